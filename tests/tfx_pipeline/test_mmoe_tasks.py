"""The MMoE paper's synthetic regression tasks (tfx_pipeline.data.mmoe_tasks): the correlation knob, the sines'
draws, determinism and bad configurations."""

import dataclasses

import numpy as np
import pytest

from tfx_pipeline.data import mmoe_tasks

ROWS = 4000


def _features(columns, dim):
    return np.stack([columns[f'{mmoe_tasks.FEATURE}_{j}'] for j in range(dim)], axis=1).astype(np.float64)


@pytest.mark.parametrize('correlation', [-0.3, 0.5, 0.9, 1.0])
def test_task_weights_have_the_asked_cosine_and_scale(correlation):
    """Without sines or noise each label is wᵀx, so least squares recovers w exactly: |w_k| = c, cos(w1, w2) = p."""
    config = mmoe_tasks.TaskConfig(correlation=correlation, rows=500, dim=20, scale=2.0, sines=0, noise_std=0.0)
    columns = mmoe_tasks.generate(config)
    x = _features(columns, config.dim)
    w1, w2 = (np.linalg.lstsq(x, columns[y].astype(np.float64), rcond=None)[0] for y in mmoe_tasks.LABELS)
    np.testing.assert_allclose([np.linalg.norm(w1), np.linalg.norm(w2)], [2.0, 2.0], rtol=1e-4)
    np.testing.assert_allclose(w1 @ w2 / (np.linalg.norm(w1) * np.linalg.norm(w2)), correlation, atol=1e-4)


@pytest.mark.parametrize('sines_draw', mmoe_tasks.SINES_DRAWS)
def test_label_correlation_rises_with_the_knob(sines_draw):
    """The labels' correlation is not p, but it rises with p, and at p = 1 only the noise tells them apart."""
    def label_correlation(p):
        columns = mmoe_tasks.generate(mmoe_tasks.TaskConfig(correlation=p, rows=ROWS, sines_draw=sines_draw))
        return np.corrcoef(columns['y1'], columns['y2'])[0, 1]

    low, mid, high = (label_correlation(p) for p in (0.2, 0.7, 1.0))
    assert low < mid < high, (low, mid, high)
    assert high > 0.99


def test_noise_has_the_configured_spread():
    """At p = 1 the two labels share everything but ε, so y1 − y2 has standard deviation √2 · noise_std."""
    columns = mmoe_tasks.generate(mmoe_tasks.TaskConfig(correlation=1.0, rows=ROWS, noise_std=0.3))
    assert np.std(columns['y1'] - columns['y2']) == pytest.approx(np.sqrt(2) * 0.3, rel=0.05)


def test_sines_draws_differ_and_each_is_deterministic():
    config = mmoe_tasks.TaskConfig(rows=300, seed=7)
    fixed, again = mmoe_tasks.generate(config), mmoe_tasks.generate(config)
    normal = mmoe_tasks.generate(dataclasses.replace(config, sines_draw='normal'))
    other_seed = mmoe_tasks.generate(dataclasses.replace(config, seed=8))
    for name in (*mmoe_tasks.LABELS, f'{mmoe_tasks.FEATURE}_0'):
        np.testing.assert_array_equal(fixed[name], again[name])
        assert fixed[name].dtype == np.float32 and fixed[name].shape == (300,)
        assert not np.array_equal(fixed[name], other_seed[name])
    assert not np.allclose(fixed['y1'], normal['y1'])
    assert len(fixed) == config.dim + len(mmoe_tasks.LABELS)


@pytest.mark.parametrize('change, field', [
    ({'correlation': 1.5}, 'correlation'), ({'rows': 0}, 'rows'), ({'dim': 1}, 'dim'), ({'sines': -1}, 'sines'),
    ({'noise_std': -0.1}, 'noise_std'), ({'sines_draw': 'uniform'}, 'sines_draw')])
def test_bad_configuration_names_the_field(change, field):
    with pytest.raises(ValueError, match=f'^{field} must'):
        mmoe_tasks.generate(mmoe_tasks.TaskConfig(**change))

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.pooling import LearnedStepValues, MaskedMeanPooling, MaskedSumPooling  # noqa: E402


def _batch():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    return values, mask


def test_sum_and_mean_use_valid_steps_only():
    values, mask = _batch()
    expected_sum = (values * mask[..., None]).sum(axis=1)
    np.testing.assert_allclose(MaskedSumPooling()(values, mask=mask), expected_sum, rtol=1e-6)
    expected_mean = expected_sum / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    np.testing.assert_allclose(MaskedMeanPooling()(values, mask=mask), expected_mean, rtol=1e-6)


def test_padded_values_are_ignored_and_empty_sequences_pool_to_zero():
    values, mask = _batch()
    noisy = np.where(mask[..., None], values, 1e6).astype(np.float32)
    for pooling in (MaskedSumPooling(), MaskedMeanPooling()):
        clean = pooling(values, mask=mask).numpy()
        np.testing.assert_allclose(pooling(noisy, mask=tf.constant(mask)), clean, rtol=1e-6)
        np.testing.assert_array_equal(clean[2], 0.0)


def _side(seed=1):
    rng = np.random.default_rng(seed)
    return {'gap': rng.integers(0, 6, size=(3, 4)), 'type': rng.integers(0, 3, size=(3, 4))}


def test_learned_step_values_start_as_the_sum_over_the_max_length_and_follow_their_formula():
    values, mask = _batch()
    side = _side()
    layer = LearnedStepValues({'gap': 6, 'type': 3})
    x = layer(side, mask).numpy()
    pooled = np.einsum('bl,bld->bd', x, values)
    np.testing.assert_allclose(pooled, MaskedSumPooling()(values, mask=mask) / 4, rtol=1e-6, atol=1e-7)
    full = mask.all(axis=1)
    assert full.any() and not full.all()  # a full history pools to its mean, a short one weighs less
    np.testing.assert_allclose(pooled[full], MaskedMeanPooling()(values, mask=mask).numpy()[full], rtol=1e-6)
    rng = np.random.default_rng(2)
    for table in layer.tables.values():
        table.assign(rng.normal(size=table.shape).astype(np.float32))
    x = layer(side, mask).numpy()
    gap, kind = layer.tables['gap'].numpy(), layer.tables['type'].numpy()
    for b in range(3):
        for j in range(4):
            expected = np.exp(gap[side['gap'][b, j]] + kind[side['type'][b, j]]) / 4 if mask[b, j] else 0.0
            assert x[b, j] == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_learned_step_values_ignore_padded_steps():
    _, mask = _batch()
    layer = LearnedStepValues({'gap': 6, 'type': 3})
    layer(_side(), mask)
    for table in layer.tables.values():
        table.assign(np.linspace(-1, 1, table.shape[0]).astype(np.float32))
    other = {name: np.where(mask, ids, (ids + 1) % size) for (name, ids), size in zip(_side().items(), (6, 3))}
    np.testing.assert_allclose(layer(other, mask), layer(_side(), mask), rtol=1e-6)

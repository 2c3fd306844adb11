import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models.layers.interest_evolution import InterestEvolution  # noqa: E402

B, L, H, D = 4, 5, 6, 3
MASK = np.arange(L)[None, :] < np.array([5, 3, 1, 0])[:, None]


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {'states': rng.normal(size=(B, L, H)).astype(np.float32),
            'target': rng.normal(size=(B, D)).astype(np.float32)}


def _layer(variant='augru'):
    layer = InterestEvolution(4, variant)
    layer(_inputs(), MASK)
    rng = np.random.default_rng(3)
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    return layer


def test_attention_is_the_softmax_of_h_w_e_over_the_valid_steps():
    layer = _layer()
    inputs = _inputs()
    _, weights = layer(inputs, MASK)
    kernel = layer.attention.kernel.numpy()
    for example in range(B):
        valid = MASK[example]
        scores = inputs['states'][example] @ kernel @ inputs['target'][example]
        expected = np.zeros(L)
        if valid.any():
            exponentials = np.exp(scores[valid] - scores[valid].max())
            expected[valid] = exponentials / exponentials.sum()
        np.testing.assert_allclose(weights[example], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('variant', ['augru', 'aigru', 'agru'])
def test_the_final_state_is_the_attentional_gru_driven_by_that_attention(variant):
    layer = _layer(variant)
    inputs = _inputs()
    final, weights = layer(inputs, MASK)
    _, expected = layer.gru(inputs['states'], MASK, weights)
    np.testing.assert_allclose(final, expected, rtol=1e-6)


def test_one_sequence_against_many_targets_equals_the_repeated_sequence():
    layer = _layer()
    inputs = _inputs()
    one = {'states': inputs['states'][:1], 'target': inputs['target']}
    broadcast_final, broadcast_weights = layer(one, MASK[:1])
    repeated = {'states': np.repeat(inputs['states'][:1], B, axis=0), 'target': inputs['target']}
    final, weights = layer(repeated, np.repeat(MASK[:1], B, axis=0))
    np.testing.assert_allclose(broadcast_final, final, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(broadcast_weights, weights, rtol=1e-5, atol=1e-6)


def test_needs_an_attentional_variant():
    with pytest.raises(ValueError, match='attentional variant'):
        InterestEvolution(4, 'gru')

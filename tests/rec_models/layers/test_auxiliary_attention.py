import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.auxiliary_attention import InteractiveAttentionPooling, SelfAttentivePooling  # noqa: E402


def _batch():
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(3, 4, 5)).astype(np.float32)
    target = rng.normal(size=(3, 6)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    return steps, target, mask


def _randomise(layer):
    rng = np.random.default_rng(1)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype(np.float32))


def test_interactive_attention_matches_its_equation_unnormalised():
    steps, target, mask = _batch()
    layer = InteractiveAttentionPooling(units=7)
    layer({'steps': steps, 'target': target}, mask)
    _randomise(layer)
    pooled, weights = layer({'steps': steps, 'target': target}, mask)
    w_a, w_t = layer.step_kernel.numpy(), layer.target_kernel.numpy()
    b_1, h, b_2 = layer.hidden_bias.numpy(), layer.output_kernel.numpy(), layer.output_bias.numpy()
    for b in range(3):
        expected_pooled = np.zeros(5)
        for i in range(4):
            alpha = np.exp(h @ np.maximum(target[b] @ w_t + steps[b, i] @ w_a + b_1, 0) + b_2) if mask[b, i] else 0.0
            np.testing.assert_allclose(weights[b, i], alpha, rtol=1e-4)
            expected_pooled += alpha * steps[b, i]
        np.testing.assert_allclose(pooled[b], expected_pooled, rtol=1e-4, atol=1e-5)
    assert not np.allclose(weights.numpy()[1].sum(), 1.0)   # not normalised
    np.testing.assert_array_equal(pooled[2], 0.0)


def test_interactive_attention_scores_one_requests_ads_against_many_targets():
    steps, target, mask = _batch()
    layer = InteractiveAttentionPooling(units=7)
    layer({'steps': steps, 'target': target}, mask)
    _randomise(layer)
    one = {'steps': steps[1:2], 'target': target}
    broadcast, _ = layer(one, mask[1:2])
    repeated, _ = layer({'steps': np.repeat(steps[1:2], 3, axis=0), 'target': target}, np.repeat(mask[1:2], 3, 0))
    np.testing.assert_allclose(broadcast, repeated, rtol=1e-6)


def test_self_attention_is_a_softmax_of_a_score_of_each_ad_alone():
    steps, _, mask = _batch()
    layer = SelfAttentivePooling(hidden_units=(4,))
    pooled, weights = layer(steps, tf.constant(mask))
    scores = np.squeeze(layer.score(steps).numpy(), -1)
    for b in (0, 1):
        expected = np.where(mask[b], np.exp(scores[b] - scores[b][mask[b]].max()), 0.0)
        expected /= expected.sum()
        np.testing.assert_allclose(weights[b], expected, rtol=1e-5)
        np.testing.assert_allclose(pooled[b], expected @ steps[b], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(weights[2], 0.0)
    noisy = np.where(mask[..., None], steps, 1e3).astype(np.float32)   # padding changes nothing
    np.testing.assert_allclose(layer(noisy, tf.constant(mask))[0], pooled, rtol=1e-6)

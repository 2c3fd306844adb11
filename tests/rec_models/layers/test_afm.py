import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import itertools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.afm import AttentionalPairwisePooling  # noqa: E402

B, N, K, T = 5, 4, 3, 6


def _fields(seed=0, num_fields=N):
    return np.random.default_rng(seed).normal(size=(B, num_fields, K)).astype(np.float32)


def _layer(fields, **kwargs):
    layer = AttentionalPairwisePooling(attention_factor=T, **kwargs)
    layer(fields)
    layer.bias.assign(np.random.default_rng(7).normal(size=T).astype(np.float32))
    return layer


def _loop(layer, fields, mask=None):
    """a_ij = softmax over valid pairs of hᵀ ReLU(W (e_i ⊙ e_j) + b); pooled = Σ a_ij (e_i ⊙ e_j), pair by pair."""
    w, b, h = layer.kernel.numpy(), layer.bias.numpy(), layer.projection.numpy()
    mask = np.ones(fields.shape[:2], bool) if mask is None else mask
    pooled, weights = np.zeros((B, K)), np.zeros((B, fields.shape[1] * (fields.shape[1] - 1) // 2))
    for example in range(B):
        pairs = list(itertools.combinations(range(fields.shape[1]), 2))
        products = [fields[example, i] * fields[example, j] for i, j in pairs]
        scores = [h @ np.maximum(w.T @ p + b, 0.0) for p in products]
        valid = [p for p, (i, j) in enumerate(pairs) if mask[example, i] and mask[example, j]]
        exponentials = {p: np.exp(scores[p]) for p in valid}
        for p in valid:
            weights[example, p] = exponentials[p] / sum(exponentials.values())
            pooled[example] += weights[example, p] * products[p]
    return pooled, weights


def test_equals_the_pairwise_loop():
    fields = _fields()
    layer = _layer(fields)
    pooled, weights = layer(fields)
    assert pooled.shape == (B, K) and weights.shape == (B, N * (N - 1) // 2)
    expected_pooled, expected_weights = _loop(layer, fields)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_weights_depend_on_the_input():
    layer = _layer(_fields())
    _, first = layer(_fields(1))
    _, second = layer(_fields(2))
    assert np.abs(first.numpy() - second.numpy()).max() > 1e-3
    assert np.abs(first.numpy() - 1.0 / first.shape[1]).max() > 1e-3, 'weights look uniform'


def test_masked_fields_leave_the_softmax():
    fields = _fields(3)
    mask = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
    noisy = fields.copy()
    noisy[~mask] = 100.0
    layer = _layer(fields)
    pooled, weights = layer(noisy, mask=mask)
    expected_pooled, expected_weights = _loop(layer, fields, mask)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights.numpy().sum(axis=1), [1, 1, 1, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(pooled.numpy()[3:], 0.0)


def test_one_field_pools_to_zero():
    fields = _fields(num_fields=1)
    pooled, weights = AttentionalPairwisePooling(T)(fields)
    assert weights.shape == (B, 0)
    np.testing.assert_array_equal(pooled, np.zeros((B, K)))


def test_dropout_acts_on_the_attention_in_training_only():
    fields = _fields(4)
    layer = _layer(fields, dropout=0.5)
    pooled, weights = layer(fields, training=False)
    np.testing.assert_allclose(pooled, _loop(layer, fields)[0], rtol=1e-5, atol=1e-6)
    tf.random.set_seed(0)
    dropped, training_weights = layer(fields, training=True)
    np.testing.assert_allclose(training_weights, weights, rtol=1e-6)
    assert np.abs(dropped.numpy() - pooled.numpy()).max() > 1e-3


@pytest.mark.parametrize('mask', [None, np.array([[1, 1, 0, 1]] * B, bool)])
def test_gradients_reach_every_weight_and_the_fields(mask):
    fields = tf.constant(_fields(5))
    layer = _layer(fields.numpy(), l2=0.1)
    with tf.GradientTape() as tape:
        tape.watch(fields)
        pooled, _ = layer(fields, mask=mask, training=True)
        loss = tf.reduce_sum(pooled ** 2) + tf.add_n(layer.losses)
    assert layer(fields, mask=mask, training=False) is not None and len(layer.losses) == 0  # the L2: training only
    gradients = tape.gradient(loss, [fields] + layer.trainable_variables)
    assert len(gradients) == 4
    for gradient in gradients:
        assert gradient is not None and np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


def test_config_round_trip():
    layer = AttentionalPairwisePooling(attention_factor=8, dropout=0.2, l2=0.01)
    clone = AttentionalPairwisePooling.from_config(layer.get_config())
    assert (clone.attention_factor, clone.dropout, clone.l2) == (8, 0.2, 0.01)
    pooled, weights = clone(_fields())
    assert clone.kernel.shape == (K, 8) and pooled.shape == (B, K) and weights.shape == (B, 6)

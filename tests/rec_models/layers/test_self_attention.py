import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.self_attention import InteractingLayer  # noqa: E402

FIELDS = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)


def _loop(layer, fields):
    """AutoInt's equations field by field and head by head; returns (outputs, attention)."""
    batch, n, _ = fields.shape
    heads, width = layer.heads, layer.head_dim
    w_q, w_k, w_v = layer.query.numpy(), layer.key.numpy(), layer.value.numpy()
    outputs = np.zeros((batch, n, heads * width), np.float32)
    attention = np.zeros((batch, heads, n, n), np.float32)
    for b in range(batch):
        for m in range(n):
            parts = []
            for h in range(heads):
                psi = np.array([np.dot(fields[b, m] @ w_q[h], fields[b, k] @ w_k[h]) for k in range(n)])
                alpha = np.exp(psi - psi.max()) / np.exp(psi - psi.max()).sum()
                attention[b, h, m] = alpha
                parts.append(sum(alpha[k] * (fields[b, k] @ w_v[h]) for k in range(n)))
            combined = np.concatenate(parts)
            if layer.residual:
                combined = combined + fields[b, m] @ layer.residual_kernel.numpy()
            outputs[b, m] = np.maximum(combined, 0.0)
    return outputs, attention


@pytest.mark.parametrize('residual', [True, False])
def test_equals_loop_reference(residual):
    layer = InteractingLayer(heads=3, head_dim=2, residual=residual)
    outputs, attention = layer(FIELDS, return_attention=True)
    assert outputs.shape == (3, 5, 6) and attention.shape == (3, 3, 5, 5)
    expected_outputs, expected_attention = _loop(layer, FIELDS)
    np.testing.assert_allclose(attention, expected_attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attention.numpy().sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(layer(FIELDS), outputs)


def test_stacked_layers_and_gradients():
    first, second = InteractingLayer(heads=2, head_dim=3), InteractingLayer(heads=2, head_dim=3)
    with tf.GradientTape() as tape:
        outputs, attention = second(first(FIELDS), return_attention=True)
        loss = tf.reduce_sum(outputs)
    assert outputs.shape == (3, 5, 6) and attention.shape == (3, 2, 5, 5)
    weights = first.trainable_weights + second.trainable_weights
    assert len(weights) == 8
    assert np.abs(first.query.numpy() - first.key.numpy()).max() > 1e-3  # independently initialised
    for gradient in tape.gradient(loss, weights):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).max() > 0


def test_config_round_trip():
    layer = InteractingLayer.from_config(InteractingLayer(heads=4, head_dim=5, residual=False).get_config())
    assert (layer.heads, layer.head_dim, layer.residual) == (4, 5, False)
    layer(FIELDS)
    assert layer.residual_kernel is None and len(layer.trainable_weights) == 3

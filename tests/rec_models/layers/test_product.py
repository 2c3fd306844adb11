import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.product import InnerProduct, OuterProduct  # noqa: E402

FIELDS = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)


def _pairs_loop(fields):
    batch, n, _ = fields.shape
    return np.array([[np.dot(fields[b, i], fields[b, j]) for i in range(n) for j in range(i + 1, n)]
                     for b in range(batch)])


def _outer_loop(fields):
    """p = Σ_i Σ_j f_i f_jᵀ, pair by pair."""
    batch, n, k = fields.shape
    p = np.zeros((batch, k, k))
    for b in range(batch):
        for i in range(n):
            for j in range(n):
                p[b] += np.outer(fields[b, i], fields[b, j])
    return p


def test_inner_product_equals_loop():
    out = InnerProduct()(FIELDS)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, _pairs_loop(FIELDS), rtol=1e-5, atol=1e-6)


def test_outer_product_without_units_is_flattened_p():
    out = OuterProduct()(FIELDS)
    assert out.shape == (3, 16)
    np.testing.assert_allclose(out, _outer_loop(FIELDS).reshape(3, 16), rtol=1e-5, atol=1e-5)


def test_outer_product_units_equal_loop():
    layer = OuterProduct(units=6)
    out = layer(FIELDS).numpy()
    assert out.shape == (3, 6)
    kernel, p = layer.kernel.numpy(), _outer_loop(FIELDS)
    expected = np.array([[np.sum(kernel[d] * p[b]) for d in range(6)] for b in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_gradients_flow():
    fields = tf.constant(FIELDS)
    inner, outer = InnerProduct(), OuterProduct(units=6)
    with tf.GradientTape() as tape:
        tape.watch(fields)
        loss = tf.reduce_sum(inner(fields)) + tf.reduce_sum(outer(fields))
    gradients = tape.gradient(loss, [fields, outer.kernel])
    assert all(g is not None and np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).max() > 0 for g in gradients)


def test_config_round_trips():
    assert isinstance(InnerProduct.from_config(InnerProduct().get_config()), InnerProduct)
    layer = OuterProduct.from_config(OuterProduct(units=6, kernel_initializer='ones').get_config())
    assert layer.units == 6
    layer(FIELDS)
    np.testing.assert_array_equal(layer.kernel.numpy(), np.ones((6, 4, 4)))

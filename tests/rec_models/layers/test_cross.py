import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.cross import CrossNetwork  # noqa: E402

X0 = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)


def _built(num_layers):
    layer = CrossNetwork(num_layers)
    layer(X0)
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def _loop(layer, x0):
    """x_{l+1} = x_0 x_lᵀ w_l + b_l + x_l, with the d × d matrix x_0 x_lᵀ written out."""
    out = []
    for row in x0:
        x0_col, x = row.reshape(-1, 1), row.reshape(-1, 1)
        for kernel, bias in zip(layer.kernels, layer.biases):
            x = (x0_col @ x.T) @ kernel.numpy().reshape(-1, 1) + bias.numpy().reshape(-1, 1) + x
        out.append(x[:, 0])
    return np.array(out)


def test_equals_matrix_form_loop():
    layer = _built(3)
    out = layer(X0)
    assert out.shape == (4, 6) and len(layer.trainable_weights) == 6
    np.testing.assert_allclose(out, _loop(layer, X0), rtol=1e-5, atol=1e-5)


def test_zero_layers_is_identity():
    np.testing.assert_array_equal(CrossNetwork(0)(X0), X0)


def test_gradients_reach_every_weight():
    layer = _built(2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(X0)))
    for gradient in tape.gradient(loss, layer.trainable_weights):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).max() > 0


def test_config_round_trip():
    layer = CrossNetwork.from_config(CrossNetwork(2, kernel_initializer='ones').get_config())
    layer(X0)
    assert layer.num_layers == 2
    np.testing.assert_array_equal(layer.kernels[1].numpy(), np.ones(6))

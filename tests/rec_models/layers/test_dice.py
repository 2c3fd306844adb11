import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.dice import Dice  # noqa: E402


def _dice(x, mean, var, alpha, eps=1e-8):
    p = 1.0 / (1.0 + np.exp(-(x - mean) / np.sqrt(var + eps)))
    return p * x + (1.0 - p) * alpha * x


def _layer(channels, alpha=0.3):
    layer = Dice()
    layer.build(tf.TensorShape([None, channels]))
    layer.alpha.assign(np.full(channels, alpha, np.float32))
    return layer


def test_training_uses_batch_statistics_and_updates_moving_averages():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(32, 4)).astype(np.float32)
    layer = _layer(4)
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out, _dice(x, x.mean(0), x.var(0), 0.3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * x.mean(0), rtol=1e-4)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.99 + 0.01 * x.var(0), rtol=1e-4)
    other = np.concatenate([x[:1], rng.normal(-5.0, 1.0, size=(31, 4))]).astype(np.float32)
    assert not np.allclose(layer(other, training=True).numpy()[0], out[0])


def test_inference_uses_moving_statistics_only():
    rng = np.random.default_rng(1)
    layer = _layer(4)
    layer.moving_mean.assign([1.0, -1.0, 0.0, 2.0])
    layer.moving_variance.assign([4.0, 1.0, 0.25, 9.0])
    x = rng.normal(size=(16, 4)).astype(np.float32)
    out = layer(x, training=False).numpy()
    np.testing.assert_allclose(out, _dice(x, layer.moving_mean.numpy(), layer.moving_variance.numpy(), 0.3),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x[:1], training=False).numpy(), out[:1], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [1.0, -1.0, 0.0, 2.0])


def test_masked_statistics_ignore_padded_positions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    mask = np.arange(5)[None] < rng.integers(1, 6, size=(8, 1))
    noisy = np.where(mask[..., None], x, rng.normal(50.0, 10.0, size=x.shape)).astype(np.float32)
    layer, noisy_layer = _layer(3), _layer(3)
    out = layer(x, training=True, mask=mask).numpy()
    noisy_out = noisy_layer(noisy, training=True, mask=tf.constant(mask)).numpy()
    np.testing.assert_allclose(noisy_out[mask], out[mask], rtol=1e-5, atol=1e-6)
    valid = x[mask]
    np.testing.assert_allclose(out[mask], _dice(valid, valid.mean(0), valid.var(0), 0.3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(noisy_layer.moving_mean.numpy(), 0.01 * valid.mean(0), rtol=1e-4)


def test_config_round_trip():
    layer = Dice(epsilon=1e-6, momentum=0.9)
    clone = Dice.from_config(layer.get_config())
    assert (clone.epsilon, clone.momentum) == (1e-6, 0.9)


def test_masked_statistics_are_accurate_for_offset_activations():
    """The one-pass E[s²] − E[s]² keeps the variance to 1e-3 for pre-activations a few deviations off zero."""
    rng = np.random.default_rng(3)
    x = rng.normal(4.0, 0.5, size=(256, 50, 8)).astype(np.float32)
    mask = np.arange(50)[None] < rng.integers(1, 51, size=(256, 1))
    layer = _layer(8)
    layer(x, training=True, mask=mask)
    valid = x[mask].astype(np.float64)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * valid.mean(0), rtol=1e-5)
    np.testing.assert_allclose((layer.moving_variance.numpy() - 0.99) / 0.01, valid.var(0), rtol=1e-3)

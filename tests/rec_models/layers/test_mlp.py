import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.dice import Dice  # noqa: E402
from rec_models.layers.mlp import MLP  # noqa: E402


@pytest.mark.parametrize('activation', ['relu', 'prelu', 'dice'])
def test_shapes_for_2d_and_3d_inputs(activation):
    mlp = MLP((8, 4), activation=activation, output_units=1)
    assert mlp(tf.zeros([5, 3])).shape == (5, 1)
    mlp3 = MLP((8, 4), activation=activation)
    assert mlp3(tf.zeros([5, 6, 3])).shape == (5, 6, 4)
    if activation == 'prelu':
        assert [tuple(layer.alpha.shape) for layer in mlp3.activation_layers] == [(1, 8), (1, 4)]


def test_mask_reaches_dice_so_padding_does_not_change_valid_outputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    mask = np.arange(6)[None] < np.array([[1], [3], [6], [2]])
    noisy = np.where(mask[..., None], x, 100.0).astype(np.float32)
    mlp = MLP((8, 4), activation='dice', output_units=1)
    out = mlp(x, training=True, mask=mask).numpy()
    np.testing.assert_allclose(mlp(noisy, training=True, mask=mask).numpy()[mask], out[mask], rtol=1e-5, atol=1e-6)
    assert all(isinstance(layer, Dice) for layer in mlp.activation_layers)


def test_dropout_only_in_training():
    mlp = MLP((64,), dropout=0.5)
    x = tf.ones([8, 4])
    np.testing.assert_allclose(mlp(x, training=False), mlp(x, training=False))
    assert not np.allclose(mlp(x, training=True), mlp(x, training=False))


def test_unknown_activation_and_config_round_trip():
    with pytest.raises(ValueError, match='swish'):
        MLP((4,), activation='swish')
    config = MLP((8, 4), activation='dice', dropout=0.1, output_units=1).get_config()
    clone = MLP.from_config(config)
    assert (clone.hidden_units, clone.activation, clone.dropout, clone.output_units) == ((8, 4), 'dice', 0.1, 1)


def test_input_batch_norm_normalises_with_batch_statistics_in_training_only():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    scaled = (x * np.array([100.0, 2.0, 5.0]) + np.array([7.0, -3.0, 0.0])).astype(np.float32)
    mlp = MLP((8,), activation='prelu', output_units=1, input_batch_norm=True)
    # In training each channel is standardised by the batch: a per-channel affine change of the input is undone.
    np.testing.assert_allclose(mlp(scaled, training=True).numpy(), mlp(x, training=True).numpy(), rtol=1e-3,
                               atol=1e-3)
    # In inference the moving statistics apply: one example's output does not depend on its batch.
    np.testing.assert_allclose(mlp(scaled[:1]).numpy(), mlp(scaled).numpy()[:1], rtol=1e-5)
    assert not np.allclose(mlp(scaled).numpy(), mlp(x).numpy(), atol=1e-3)
    plain = MLP((8,), activation='prelu', output_units=1)
    plain(x)
    assert len(mlp.weights) == len(plain.weights) + 4   # γ, β and the two moving statistics
    assert MLP.from_config(mlp.get_config()).input_batch_norm

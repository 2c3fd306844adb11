"""The fully connected tower of the Embedding&MLP family (DIN §4.2, DeepFM's deep component).

    h_0 = x (BN(x) with ``input_batch_norm``),   h_{l+1} = dropout(σ(h_l · W_l + b_l)),
    output = h_n · W_out + b_out   (if ``output_units``)

σ is ReLU, LeakyReLU (α = 0.2, BST's choice), tanh (FNN's choice), PReLU (f(s) = s if s > 0 else α·s, α per
channel) or Dice (:mod:`rec_models.layers.dice`). The layer works on ``[..., d]`` inputs; a mask over the leading
axes is passed on to Dice so that its batch statistics only see valid positions.

``input_batch_norm`` batch-normalises the input first, as the DIN/DIEN/DMR authors' code does before its fully
connected net (``build_fcn_net``): it puts the raw pooled sums, relevance scores and numerics on one scale, which a
PReLU or LeakyReLU tower (unlike Dice, which normalises every layer) does not do itself. Its moving statistics use
momentum 0.9 (about the last ten batches) rather than Keras' 0.99, so that a briefly trained model does not serve
with statistics still close to their initial values.
"""

import tensorflow as tf

from rec_models.layers.dice import Dice

ACTIVATIONS = ('relu', 'leaky_relu', 'tanh', 'prelu', 'dice')


def make_activation(name, rank):
    """The activation layer for inputs of ``rank``; PReLU shares its α over all axes but the last."""
    if name == 'relu':
        return tf.keras.layers.ReLU()
    if name == 'leaky_relu':
        return tf.keras.layers.LeakyReLU(alpha=0.2)
    if name == 'tanh':
        return tf.keras.layers.Activation('tanh')
    if name == 'prelu':
        return tf.keras.layers.PReLU(shared_axes=list(range(1, rank - 1)) or None)
    if name == 'dice':
        return Dice()
    raise ValueError(f'unknown activation {name!r}; expected one of {ACTIVATIONS}')


def apply_activation(layer, x, training=None, mask=None):
    """Calls an activation layer; only Dice takes the training flag and the mask."""
    if isinstance(layer, Dice):
        return layer(x, training=training, mask=mask)
    return layer(x)


class MLP(tf.keras.layers.Layer):
    """Dense → activation → dropout per entry of ``hidden_units``, then an optional linear output layer.

    ``call(x, training=None, mask=None)``; ``input_batch_norm`` needs ``[B, d]`` inputs.
    """

    def __init__(self, hidden_units, activation='relu', dropout=0.0, output_units=None, input_batch_norm=False,
                 **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f'unknown activation {activation!r}; expected one of {ACTIVATIONS}')
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.dropout = dropout
        self.output_units = output_units
        self.input_batch_norm = input_batch_norm
        self.input_norm = (tf.keras.layers.BatchNormalization(momentum=0.9, name='input_norm')
                           if input_batch_norm else None)
        self.dense_layers = [tf.keras.layers.Dense(units) for units in self.hidden_units]
        self.dropout_layers = [tf.keras.layers.Dropout(dropout) for _ in self.hidden_units]
        self.output_layer = tf.keras.layers.Dense(output_units) if output_units else None

    def build(self, input_shape):
        rank = len(input_shape)
        self.activation_layers = [make_activation(self.activation, rank) for _ in self.hidden_units]
        super().build(input_shape)

    def call(self, x, training=None, mask=None):
        if self.input_norm is not None:
            x = self.input_norm(x, training=training)
        for dense, activation, dropout in zip(self.dense_layers, self.activation_layers, self.dropout_layers):
            x = dense(x)
            x = apply_activation(activation, x, training=training, mask=mask)
            x = dropout(x, training=training)
        return self.output_layer(x) if self.output_layer is not None else x

    def get_config(self):
        return {**super().get_config(), 'hidden_units': self.hidden_units, 'activation': self.activation,
                'dropout': self.dropout, 'output_units': self.output_units, 'input_batch_norm': self.input_batch_norm}

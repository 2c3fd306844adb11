"""Additive attention scores over a sequence (DMR's User-to-Item and Item-to-Item networks: Lyu et al., *Deep Match
to Rank Model for Personalized Click-Through Rate Prediction*, AAAI 2020):

    a_t = zᵀ tanh(Σ_i W_i x_{i,t} + b)

where each input x_i is either per step (``[B, L, d_i]``: the behaviour e_t, its positional vector p_t) or per
example (``[B, d_i]``: the target e_c, the same for every step; its product W_i x_i is computed once per example).
The scores are returned before any softmax: DMR uses them both normalised (the attention weights) and summed
(the relevance r̂ = Σ_t a_t).
"""

import tensorflow as tf


class AdditiveAttentionScores(tf.keras.layers.Layer):
    """``call(inputs: list of [B, L, d_i] or [B, d_i] tensors) → a [B, L]``; at least one input is per step.

    Args:
        units: the width of the hidden layer (the rows of each W_i).
    """

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernels = [self.add_weight(name=f'kernel_{i}', shape=(int(shape[-1]), self.units),
                                        initializer='glorot_uniform') for i, shape in enumerate(input_shape)]
        self.bias = self.add_weight(name='bias', shape=(self.units,), initializer='zeros')
        self.projection = self.add_weight(name='projection', shape=(self.units,), initializer='glorot_uniform')
        super().build(input_shape)

    def call(self, inputs):
        if not any(x.shape.rank == 3 for x in inputs):
            raise ValueError('AdditiveAttentionScores needs at least one per-step input [B, L, d]')
        hidden = self.bias
        for x, kernel in zip(inputs, self.kernels):
            projected = tf.einsum('b...d,dk->b...k', x, kernel)
            hidden = hidden + (projected if x.shape.rank == 3 else projected[:, tf.newaxis, :])
        return tf.einsum('blk,k->bl', tf.tanh(hidden), self.projection)

    def get_config(self):
        return {**super().get_config(), 'units': self.units}

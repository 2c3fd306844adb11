"""DSIN's session interest interacting layer: a bidirectional LSTM with peephole connections over the sessions
(Feng et al., *Deep Session Interest Network for Click-Through Rate Prediction*, IJCAI 2019, eq. 8–9, after Graves'
LSTM):

    i_t = σ(W_xi I_t + W_hi h_{t−1} + w_ci ∘ c_{t−1} + b_i)
    f_t = σ(W_xf I_t + W_hf h_{t−1} + w_cf ∘ c_{t−1} + b_f)
    c_t = f_t ∘ c_{t−1} + i_t ∘ tanh(W_xc I_t + W_hc h_{t−1} + b_c)
    o_t = σ(W_xo I_t + W_ho h_{t−1} + w_co ∘ c_t + b_o)
    h_t = o_t ∘ tanh(c_t)
    H_t = h→_t ⊕ h←_t

The peephole weights w_c· are diagonal (vectors), as in Graves' formulation the paper's equations come from. The
valid steps come first (sessions oldest first, then empty slots): the forward LSTM runs over them in order, the
backward one over them in reverse (the valid steps are reversed, the padding stays at the end), and H_t at an
empty slot is 0. The input projections of all steps are one matrix product before the loop.
"""

import tensorflow as tf


class PeepholeLSTM(tf.keras.layers.Layer):
    """One direction: ``call(inputs [B, L, d], mask [B, L]) → h [B, L, units]``; a padded step keeps the state
    (and repeats the last output)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        u = self.units
        self.input_kernel = self.add_weight(name='input_kernel', shape=(int(input_shape[-1]), 4 * u),
                                            initializer='glorot_uniform')
        self.recurrent_kernel = self.add_weight(name='recurrent_kernel', shape=(u, 4 * u), initializer='orthogonal')
        self.peepholes = self.add_weight(name='peepholes', shape=(3, u), initializer='zeros')   # w_ci, w_cf, w_co
        self.bias = self.add_weight(name='bias', shape=(4 * u,), initializer='zeros')           # b_i, b_f, b_c, b_o
        super().build(input_shape)

    def call(self, inputs, mask):
        projected = tf.einsum('bld,dk->blk', inputs, self.input_kernel) + self.bias
        steps = (tf.transpose(projected, [1, 0, 2]), tf.transpose(tf.cast(mask, tf.float32))[..., tf.newaxis])
        zeros = tf.zeros(tf.stack([tf.shape(inputs)[0], self.units]))
        hidden, _ = tf.scan(lambda state, step: self._step(*state, *step), steps, initializer=(zeros, zeros))
        return tf.transpose(hidden, [1, 0, 2])

    def _step(self, h, c, projected, valid):
        x_i, x_f, x_c, x_o = tf.split(projected + tf.matmul(h, self.recurrent_kernel), 4, axis=-1)
        w_i, w_f, w_o = tf.unstack(self.peepholes)
        i = tf.sigmoid(x_i + w_i * c)
        f = tf.sigmoid(x_f + w_f * c)
        c_new = f * c + i * tf.tanh(x_c)
        o = tf.sigmoid(x_o + w_o * c_new)
        h_new = o * tf.tanh(c_new)
        return valid * h_new + (1.0 - valid) * h, valid * c_new + (1.0 - valid) * c

    def get_config(self):
        return {**super().get_config(), 'units': self.units}


class BidirectionalLSTM(tf.keras.layers.Layer):
    """H_t = h→_t ⊕ h←_t: ``call(inputs [B, L, d], mask [B, L]) → [B, L, 2 · units]``, 0 at padded steps."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.forward = PeepholeLSTM(units, name='forward')
        self.backward = PeepholeLSTM(units, name='backward')

    def call(self, inputs, mask):
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)

        def reverse(x):
            return tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)

        both = tf.concat([self.forward(inputs, mask), reverse(self.backward(reverse(inputs), mask))], axis=-1)
        return both * tf.cast(mask, both.dtype)[..., tf.newaxis]

    def get_config(self):
        return {**super().get_config(), 'units': self.units}

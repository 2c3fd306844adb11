"""DIEN's recurrent layers (Zhou et al., *Deep Interest Evolution Network for Click-Through Rate Prediction*,
AAAI 2019, §4.2–4.3): the GRU of the interest extractor and its attentional variants in the interest evolving layer.

The GRU (the paper's equations, with the reset gate applied to U^h h_{t−1}):

    u_t = σ(W^u i_t + U^u h_{t−1} + b^u)
    r_t = σ(W^r i_t + U^r h_{t−1} + b^r)
    h̃_t = tanh(W^h i_t + r_t ∘ U^h h_{t−1} + b^h)
    h_t = (1 − u_t) ∘ h_{t−1} + u_t ∘ h̃_t

and, with an attention score a_t per step (``variant``):

* ``'aigru'`` (GRU with attentional input): i'_t = a_t · i_t, then the GRU;
* ``'agru'`` (attention-based GRU): the scalar a_t replaces the update gate, h_t = (1 − a_t) h_{t−1} + a_t h̃_t;
* ``'augru'`` (GRU with attentional update gate, DIEN's choice): u'_t = a_t · u_t,
  h_t = (1 − u'_t) ∘ h_{t−1} + u'_t ∘ h̃_t.

Masking: a padded step leaves the state unchanged (h_t = h_{t−1}), so the final state is the state after the last
valid step and padding never changes any valid output; the outputs at padded steps repeat the last valid state.
An empty sequence ends in the initial state, 0.

Speed: the input projections [W^u; W^r; W^h] i_t + b of all steps are one matrix product before the loop; the
loop does only the recurrent product h_{t−1} [U^u, U^r, U^h] per step.
"""

import tensorflow as tf

VARIANTS = ('gru', 'aigru', 'agru', 'augru')


class InterestGRU(tf.keras.layers.Layer):
    """A GRU over a masked sequence, plain or attentional.

    ``call(inputs, mask, attention=None) → (outputs [B, L, H], final [B, H])``: ``inputs`` ``[B, L, d]``,
    ``mask`` ``[B, L]`` (valid steps first, then padding), ``attention`` ``[B, L]`` (a_t; required by the
    attentional variants, refused by ``'gru'``).

    Args:
        units: H, the width of the hidden state.
        variant: one of ``VARIANTS``.
    """

    def __init__(self, units, variant='gru', **kwargs):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}, got {variant!r}')
        self.units = units
        self.variant = variant

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.input_kernel = self.add_weight(name='input_kernel', shape=(dim, 3 * self.units),
                                            initializer='glorot_uniform')
        self.recurrent_kernel = self.add_weight(name='recurrent_kernel', shape=(self.units, 3 * self.units),
                                                initializer='orthogonal')
        self.bias = self.add_weight(name='bias', shape=(3 * self.units,), initializer='zeros')
        super().build(input_shape)

    def call(self, inputs, mask, attention=None):
        if (attention is None) != (self.variant == 'gru'):
            raise ValueError(f"variant {self.variant!r} {'needs' if attention is None else 'takes no'} attention")
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        if self.variant == 'aigru':
            inputs = inputs * attention[..., tf.newaxis]
        projected = tf.einsum('bld,dk->blk', inputs, self.input_kernel) + self.bias      # [B, L, 3H], all steps
        steps = [tf.transpose(projected, [1, 0, 2]), tf.transpose(tf.cast(mask, tf.float32))[..., tf.newaxis]]
        if attention is not None:
            steps.append(tf.transpose(attention)[..., tf.newaxis])
        initial = tf.zeros(tf.stack([tf.shape(inputs)[0], self.units]))
        outputs = tf.scan(lambda h, step: self._step(h, *step), tuple(steps), initializer=initial)
        return tf.transpose(outputs, [1, 0, 2]), outputs[-1]

    def _step(self, h, projected, valid, attention=None):
        """h_t from h_{t−1} ``[B, H]``, the step's input projection ``[B, 3H]``, validity ``[B, 1]`` and a_t."""
        x_u, x_r, x_h = tf.split(projected, 3, axis=-1)
        h_u, h_r, h_h = tf.split(tf.matmul(h, self.recurrent_kernel), 3, axis=-1)
        update = tf.sigmoid(x_u + h_u)
        reset = tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_h + reset * h_h)
        if self.variant == 'agru':
            update = attention
        elif self.variant == 'augru':
            update = attention * update
        new = (1.0 - update) * h + update * candidate
        return valid * new + (1.0 - valid) * h

    def get_config(self):
        return {**super().get_config(), 'units': self.units, 'variant': self.variant}

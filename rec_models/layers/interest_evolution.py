"""DIEN's interest evolving layer (Zhou et al., *Deep Interest Evolution Network for Click-Through Rate Prediction*,
AAAI 2019, §4.3, eq. 5–8).

The attention of each interest state h_t on the target ad e_a, over the valid steps,

    a_t = exp(h_t W e_a) / Σ_j exp(h_j W e_a)                                  (eq. 5, :class:`BilinearAttention`)

drives an attentional GRU over h_1 … h_T (:class:`~rec_models.layers.gru.InterestGRU`, ``'augru'`` by default, or
``'aigru'`` / ``'agru'``); its final state h'_T is the user's interest in the target.
"""

import tensorflow as tf

from rec_models.layers.bilinear_attention import BilinearAttention
from rec_models.layers.gru import InterestGRU


class InterestEvolution(tf.keras.layers.Layer):
    """``call({'states': h [B, L, H], 'target': e_a [B, d]}, mask [B, L]) → (h'_T [B, H'], a [B, L])``.

    The states and the mask may have batch 1 against N targets (one user's sequence scored against N
    candidates): the projection h_t W is then computed once, and the GRU runs on the states broadcast to N.

    Args:
        units: H', the width of the evolving GRU's state.
        variant: ``'augru'``, ``'aigru'`` or ``'agru'``.
    """

    def __init__(self, units, variant='augru', **kwargs):
        super().__init__(**kwargs)
        if variant == 'gru':
            raise ValueError("the interest evolving layer needs an attentional variant ('augru', 'aigru', 'agru')")
        self.units = units
        self.variant = variant
        self.gru = InterestGRU(units, variant, name='gru')
        self.attention = BilinearAttention(name='attention')

    def build(self, input_shape):
        self.attention.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, mask):
        states, target = inputs['states'], inputs['target']
        weights = self.attention.weights_of(states, target, mask)
        batch = tf.shape(weights)[0]
        states = tf.broadcast_to(states, tf.concat([[batch], tf.shape(states)[1:]], axis=0))
        mask = tf.broadcast_to(mask, tf.shape(weights))
        _, final = self.gru(states, mask, weights)
        return final, weights

    def get_config(self):
        return {**super().get_config(), 'units': self.units, 'variant': self.variant}

"""Bilinear attention of a target on a sequence of states, softmax over the valid steps (eq. 5 of Zhou et al.,
*Deep Interest Evolution Network for Click-Through Rate Prediction*, AAAI 2019; eq. 10–11 of Feng et al., *Deep
Session Interest Network for Click-Through Rate Prediction*, IJCAI 2019):

    a_t = exp(h_t W e_a) / Σ_j exp(h_j W e_a),      pooled = Σ_t a_t h_t

The states (and their mask) may have batch 1 against N targets (one user's sequence scored against N
candidates): the projection h_t W is then computed once.
"""

import tensorflow as tf

from rec_models.layers.softmax import masked_softmax


class BilinearAttention(tf.keras.layers.Layer):
    """``call({'states': h [B, L, H], 'target': e_a [B, d]}, mask [B, L]) → (pooled [B, H], a [B, L])``; a is 0
    at padded steps, and a sequence with no valid step pools to 0."""

    def build(self, input_shape):
        self.kernel = self.add_weight(name='kernel', shape=(int(input_shape['states'][-1]),
                                                            int(input_shape['target'][-1])),
                                      initializer='glorot_uniform')
        super().build(input_shape)

    def weights_of(self, states, target, mask):
        """a_t: ``[B, L]``; ``states`` and ``mask`` of batch B or 1."""
        projected = tf.einsum('blh,hd->bld', states, self.kernel)                     # h_t W, once per sequence
        scores = tf.reduce_sum(projected * target[:, tf.newaxis, :], axis=-1)         # h_t W e_a: [B, L]
        return masked_softmax(scores, tf.broadcast_to(mask, tf.shape(scores)))

    def call(self, inputs, mask):
        weights = self.weights_of(inputs['states'], inputs['target'], mask)
        return tf.einsum('bl,blh->bh', weights, tf.broadcast_to(
            inputs['states'], tf.concat([tf.shape(weights), tf.shape(inputs['states'])[2:]], axis=0))), weights

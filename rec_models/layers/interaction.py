"""The two terms of a factorization machine (Rendle, *Factorization Machines*, ICDM 2010; DeepFM's FM component):

    ŷ_FM = w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j

With one field vector e_i = v_i x_i per field (an embedding row for a categorical field, x_f · v_f for a
numeric one) the pairwise term is computed in O(k n) rather than O(k n²):

    Σ_{i<j} ⟨e_i, e_j⟩ = ½ Σ_{f=1}^{k} [(Σ_i e_{i,f})² − Σ_i e_{i,f}²]
"""

import tensorflow as tf

from rec_models.layers.bi_interaction import bi_interaction


class FMFirstOrder(tf.keras.layers.Layer):
    """w0 + Σ_i w_i x_i: the first-order terms ``[B, n]`` (or ``[B, n, 1]``) summed with a learned bias → ``[B]``."""

    def build(self, input_shape):
        self.bias = self.add_weight(name='bias', shape=(), initializer='zeros')
        super().build(input_shape)

    def call(self, terms):
        return self.bias + tf.reduce_sum(tf.reshape(terms, [tf.shape(terms)[0], -1]), axis=1)


class FMSecondOrder(tf.keras.layers.Layer):
    """Σ_{i<j} ⟨e_i, e_j⟩ = ½ Σ_f [(Σ_i e_{i,f})² − Σ_i e_{i,f}²]: field vectors ``[B, n, k]`` → ``[B]``."""

    def call(self, fields):
        return tf.reduce_sum(bi_interaction(fields), axis=1)

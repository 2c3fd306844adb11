"""PNN's product layer (Qu et al., *Product-based Neural Networks for User Response Prediction*, ICDM 2016): the
pairwise products of the field vectors f_1, …, f_n (``[B, n, k]``).

* IPNN: inner products g(f_i, f_j) = ⟨f_i, f_j⟩ for i < j.
* OPNN: outer products g(f_i, f_j) = f_i f_jᵀ; the paper sums them all before the projection (its "superposition"
  trick), p = Σ_{i=1}^{n} Σ_{j=1}^{n} f_i f_jᵀ = f_Σ f_Σᵀ with f_Σ = Σ_i f_i, which is O(k² + nk) instead of
  O(n² k²), and the product part of l_p has D1 units l_p^d = W_p^d ⊙ p = Σ_{a,b} (W_p^d)_{ab} p_{ab}.
"""

import tensorflow as tf

from rec_models.layers.field_aware import pair_indices


class InnerProduct(tf.keras.layers.Layer):
    """IPNN's pairwise inner products ⟨f_i, f_j⟩, i < j in row-major order: ``[B, n, k]`` → ``[B, n(n−1)/2]``.

    The product signals p feed the first hidden layer with the linear signals (the field vectors themselves); the
    paper's first-order decomposition of the inner-product weights is not applied here.
    """

    def build(self, input_shape):
        rows, cols = pair_indices(input_shape[1])
        self.rows = tf.constant(rows, tf.int32)
        self.cols = tf.constant(cols, tf.int32)
        super().build(input_shape)

    def call(self, fields):
        return tf.reduce_sum(tf.gather(fields, self.rows, axis=1) * tf.gather(fields, self.cols, axis=1), axis=-1)


class OuterProduct(tf.keras.layers.Layer):
    """OPNN's outer-product layer with sum pooling, p = f_Σ f_Σᵀ, f_Σ = Σ_i f_i.

    ``call(fields)``: ``[B, n, k]`` → ``[B, units]`` with l_p^d = Σ_{a,b} (W_p^d)_{ab} p_{ab} (the paper's product
    part of the first hidden layer, W_p ``[units, k, k]``, no bias: l_1's bias b_1 belongs to the layer that adds
    l_z and l_p), or, with ``units=None``, the flattened p ``[B, k²]``.

    Args:
        units: D1, the number of product units; None returns p itself.
        kernel_initializer: initializer of W_p.
    """

    def __init__(self, units=None, kernel_initializer='glorot_uniform', **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        k = input_shape[-1]
        if self.units:
            self.kernel = self.add_weight(name='kernel', shape=(self.units, k, k), initializer=self.kernel_initializer)
        super().build(input_shape)

    def call(self, fields):
        total = tf.reduce_sum(fields, axis=1)
        if self.units:
            return tf.einsum('ba,dac,bc->bd', total, self.kernel, total)
        return tf.reshape(total[:, :, tf.newaxis] * total[:, tf.newaxis, :], [-1, fields.shape[-1] ** 2])

    def get_config(self):
        return {**super().get_config(), 'units': self.units,
                'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer)}

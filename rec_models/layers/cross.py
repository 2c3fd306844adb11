"""DCN's cross network (Wang et al., *Deep & Cross Network for Ad Click Predictions*, ADKDD 2017).

Each cross layer l = 0, …, L−1 has a weight vector w_l and a bias b_l (both ``[d]``) and computes

    x_{l+1} = x_0 x_lᵀ w_l + b_l + x_l

so x_0 x_lᵀ w_l = x_0 · (x_l · w_l) is x_0 scaled by one scalar per example and layer: O(d) per layer and
polynomial degree l + 1 after l layers. This is DCN-v1's vector form; ``tensorflow_recommenders.layers.dcn.Cross``
implements DCN-v2's matrix form x_0 ⊙ (W x_l + b) + x_l, which is not this one (with a rank-1 W = u vᵀ its u is
learned, where v1 has u = 1 and the bias outside the product), so it is not used here.
"""

import tensorflow as tf

from rec_models.layers.initializers import fresh


class CrossNetwork(tf.keras.layers.Layer):
    """``call(x0)``: L stacked DCN-v1 cross layers, ``[B, d]`` → ``[B, d]``.

    Args:
        num_layers: L.
        kernel_initializer: initializer of the w_l (the b_l start at zero).
    """

    def __init__(self, num_layers, kernel_initializer='glorot_uniform', **kwargs):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        d = input_shape[-1]
        self.kernels = [self.add_weight(name=f'kernel_{l}', shape=(d,), initializer=fresh(self.kernel_initializer))
                        for l in range(self.num_layers)]
        self.biases = [self.add_weight(name=f'bias_{l}', shape=(d,), initializer='zeros')
                       for l in range(self.num_layers)]
        super().build(input_shape)

    def call(self, x0):
        x = x0
        for kernel, bias in zip(self.kernels, self.biases):
            x = x0 * tf.reduce_sum(x * kernel, axis=-1, keepdims=True) + bias + x
        return x

    def get_config(self):
        return {**super().get_config(), 'num_layers': self.num_layers,
                'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer)}

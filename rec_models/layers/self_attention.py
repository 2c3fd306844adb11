"""AutoInt's interacting layer (Song et al., *AutoInt: Automatic Feature Interaction Learning via Self-Attentive
Neural Networks*, CIKM 2019): multi-head self-attention over the fields.

For field m (e_m ``[d]``) and each head h = 1, …, H with W_Q^h, W_K^h, W_V^h ``[d, d']``:

    α_{m,k}^h = exp(ψ^h(e_m, e_k)) / Σ_{l=1}^{n} exp(ψ^h(e_m, e_l)),   ψ^h(e_m, e_k) = ⟨W_Q^h e_m, W_K^h e_k⟩
    ẽ_m^h = Σ_{k=1}^{n} α_{m,k}^h (W_V^h e_k)
    ẽ_m = ẽ_m^1 ⊕ … ⊕ ẽ_m^H                      (concatenation, H·d' wide)
    e_m^Res = ReLU(ẽ_m + W_Res e_m)                  (W_Res ``[d, H·d']``)

ψ is the plain inner product of the paper (no 1/√d' scaling); the projections have no biases. The output
``[B, n, H·d']`` is again a set of field vectors, so layers stack.
"""

import tensorflow as tf

from rec_models.layers.initializers import fresh


class InteractingLayer(tf.keras.layers.Layer):
    """``call(fields, return_attention=False)``: ``[B, n, d]`` → ``[B, n, heads·head_dim]``, and with
    ``return_attention`` also the attention maps α ``[B, heads, n, n]`` (``[b, h, m, k]`` = α_{m,k}^h, rows sum
    to 1).

    Args:
        heads: H.
        head_dim: d', the width of each head.
        residual: add W_Res e_m before the ReLU (the paper's residual connection); False gives ReLU(ẽ_m).
        kernel_initializer: initializer of W_Q, W_K, W_V and W_Res.
    """

    def __init__(self, heads=2, head_dim=8, residual=True, kernel_initializer='glorot_uniform', **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.head_dim = head_dim
        self.residual = residual
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        d = input_shape[-1]

        def kernel(name, shape):
            return self.add_weight(name=name, shape=shape, initializer=fresh(self.kernel_initializer))

        self.query = kernel('query', (self.heads, d, self.head_dim))
        self.key = kernel('key', (self.heads, d, self.head_dim))
        self.value = kernel('value', (self.heads, d, self.head_dim))
        self.residual_kernel = kernel('residual', (d, self.heads * self.head_dim)) if self.residual else None
        super().build(input_shape)

    def call(self, fields, return_attention=False):
        queries = tf.einsum('bnd,hde->bhne', fields, self.query)
        keys = tf.einsum('bnd,hde->bhne', fields, self.key)
        values = tf.einsum('bnd,hde->bhne', fields, self.value)
        attention = tf.nn.softmax(tf.einsum('bhme,bhke->bhmk', queries, keys), axis=-1)
        heads = tf.einsum('bhmk,bhke->bmhe', attention, values)
        outputs = tf.reshape(heads, [-1, fields.shape[1], self.heads * self.head_dim])
        if self.residual:
            outputs += tf.einsum('bnd,de->bne', fields, self.residual_kernel)
        outputs = tf.nn.relu(outputs)
        return (outputs, attention) if return_attention else outputs

    def get_config(self):
        return {**super().get_config(), 'heads': self.heads, 'head_dim': self.head_dim, 'residual': self.residual,
                'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer)}

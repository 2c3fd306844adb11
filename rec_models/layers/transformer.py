"""The transformer block of the behaviour-sequence models (Vaswani et al. 2017 as BST, Chen et al. 2019, §3.2 uses
it; also DSIN's per-session interest extractor and DMIN's behaviour refiner):

    head_i = softmax(Q_i K_iᵀ / √d_h) V_i,   Q_i = S W_i^Q, K_i = S W_i^K, V_i = S W_i^V       (keys: valid steps)
    MH(S) = [head_1, …, head_h] W^O
    S' = LayerNorm(S + Dropout(MH(S)))
    F = LayerNorm(S' + Dropout(σ(S' W^(1) + b^(1)) W^(2) + b^(2)))                            (BST eq. 3–5)

σ is BST's LeakyReLU (α = 0.2; ``activation``). Padded steps are never attended to, and their outputs are set to 0, so
padding changes no output; a sequence with no valid step gives zeros.
"""

import tensorflow as tf

from rec_models.layers.softmax import masked_softmax


class TransformerBlock(tf.keras.layers.Layer):
    """``call(sequence [B, L, d], mask [B, L], training=None) → (F [B, L, d], attention [B, heads, L, L])``.

    Args:
        heads: h.
        head_dim: d_h, the width of each head (the projections are d × h·d_h; W^O maps h·d_h back to d).
        ffn_units: width of the point-wise feed-forward layer's hidden layer (0: 4·d).
        dropout: dropout rate on MH(S) and on the feed-forward output (training only).
        activation: σ of the feed-forward layer: ``'leaky_relu'`` (BST's) or ``'relu'``.
    """

    def __init__(self, heads=8, head_dim=8, ffn_units=0, dropout=0.1, activation='leaky_relu', **kwargs):
        super().__init__(**kwargs)
        if activation not in ('leaky_relu', 'relu'):
            raise ValueError(f"activation must be 'leaky_relu' or 'relu', got {activation!r}")
        self.heads, self.head_dim, self.ffn_units = heads, head_dim, ffn_units
        self.dropout, self.activation = dropout, activation

    def build(self, input_shape):
        d = int(input_shape[-1])
        width = self.heads * self.head_dim

        def kernel(name, shape):
            return self.add_weight(name=name, shape=shape, initializer='glorot_uniform')

        self.query, self.key, self.value = (kernel(name, (d, width)) for name in ('query', 'key', 'value'))
        self.output_kernel = kernel('output', (width, d))
        hidden = self.ffn_units or 4 * d
        self.ffn_in = tf.keras.layers.Dense(hidden, name='ffn_in')
        self.ffn_out = tf.keras.layers.Dense(d, name='ffn_out')
        self.attention_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6, name='attention_norm')
        self.ffn_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6, name='ffn_norm')
        self.drop = tf.keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def _heads(self, sequence, kernel):
        """``[B, L, d] → [B, h, L, d_h]``."""
        projected = tf.einsum('bld,dk->blk', sequence, kernel)
        return tf.transpose(tf.reshape(projected, [tf.shape(sequence)[0], -1, self.heads, self.head_dim]),
                            [0, 2, 1, 3])

    def call(self, sequence, mask, training=None):
        queries, keys, values = (self._heads(sequence, k) for k in (self.query, self.key, self.value))
        scores = tf.einsum('bhmk,bhnk->bhmn', queries, keys) / self.head_dim ** 0.5
        valid = tf.cast(mask, sequence.dtype)
        attention = masked_softmax(scores, tf.broadcast_to(valid[:, tf.newaxis, tf.newaxis, :], tf.shape(scores)))
        heads = tf.einsum('bhmn,bhnk->bmhk', attention, values)
        attended = tf.einsum('blk,kd->bld', tf.reshape(heads, [tf.shape(sequence)[0], -1, self.heads * self.head_dim]),
                             self.output_kernel)
        hidden = self.attention_norm(sequence + self.drop(attended, training=training))
        activated = self.ffn_in(hidden)
        activated = tf.nn.leaky_relu(activated) if self.activation == 'leaky_relu' else tf.nn.relu(activated)
        outputs = self.ffn_norm(hidden + self.drop(self.ffn_out(activated), training=training))
        return outputs * valid[..., tf.newaxis], attention

    def get_config(self):
        return {**super().get_config(), 'heads': self.heads, 'head_dim': self.head_dim, 'ffn_units': self.ffn_units,
                'dropout': self.dropout, 'activation': self.activation}

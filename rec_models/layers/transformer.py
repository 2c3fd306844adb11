"""Multi-head self-attention and the transformer block of the behaviour-sequence models (Vaswani et al. 2017, as
BST, Chen et al. 2019, §3.2 uses it; also DSIN's per-session interest extractor, DMIN's behaviour refiner and
multi-interest extractor):

    head_i = softmax(Q_i K_iᵀ / √d_h) V_i,   Q_i = S W_i^Q, K_i = S W_i^K, V_i = S W_i^V       (keys: valid steps)
    MH(S) = [head_1, …, head_h] W^O
    S' = LayerNorm(S + Dropout(MH(S)))
    F = LayerNorm(S' + Dropout(σ(S' W^(1) + b^(1)) W^(2) + b^(2)))                            (BST eq. 3–5)

σ is BST's LeakyReLU (α = 0.2; ``activation``; ReLU and BERT's exact GELU are the alternatives). With ``causal``, step
m attends only to the steps n ≤ m (the encoders of :mod:`rec_models.retrieval.sequence_encoder`). Padded steps are
never attended to, and their outputs are set to 0, so padding changes no output; a sequence with no valid step gives
zeros.
"""

import tensorflow as tf

from rec_models.layers.softmax import masked_softmax

ACTIVATIONS = ('leaky_relu', 'relu', 'gelu')


def activate(x, activation: str):
    """σ(x) for one of :data:`ACTIVATIONS`: LeakyReLU with α = 0.2 (BST's), ReLU, or the exact GELU x·Φ(x)."""
    if activation == 'leaky_relu':
        return tf.nn.leaky_relu(x)
    if activation == 'gelu':
        return tf.nn.gelu(x, approximate=False)
    return tf.nn.relu(x)


class MultiHeadSelfAttention(tf.keras.layers.Layer):
    """head_i = softmax(Q_i K_iᵀ / s) V_i over the valid keys, MH(S) = [head_1, …, head_h] W^O.

    ``call(sequence [B, L, d], mask [B, L], joined=True) → (MH(S) [B, L, output_dim or d], attention
    [B, h, L, L])``; with ``joined=False`` the heads before W^O, ``[B, h, L, d_h]``, in place of MH(S).

    Args:
        heads: h.
        head_dim: d_h, the width of each head.
        output_dim: width of MH(S) (0: d, the input's).
        scale: s (None: √d_h; DMIN's multi-interest extractor divides by √d_model).
        causal: step m attends only to the valid steps n ≤ m (for a sequence that must not see its future).
    """

    def __init__(self, heads=8, head_dim=8, output_dim=0, scale=None, causal=False, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.head_dim, self.output_dim, self.scale = heads, head_dim, output_dim, scale
        self.causal = causal

    def build(self, input_shape):
        d = int(input_shape[-1])
        width = self.heads * self.head_dim

        def kernel(name, shape):
            return self.add_weight(name=name, shape=shape, initializer='glorot_uniform')

        self.query, self.key, self.value = (kernel(name, (d, width)) for name in ('query', 'key', 'value'))
        self.output_kernel = kernel('output', (width, self.output_dim or d))
        super().build(input_shape)

    def _split(self, sequence, kernel):
        """``[B, L, d] → [B, h, L, d_h]``."""
        projected = tf.einsum('bld,dk->blk', sequence, kernel)
        return tf.transpose(tf.reshape(projected, [tf.shape(sequence)[0], -1, self.heads, self.head_dim]),
                            [0, 2, 1, 3])

    def heads_of(self, sequence, mask):
        """``(heads [B, h, L, d_h], attention [B, h, L, L])``; padded keys get no attention."""
        queries, keys, values = (self._split(sequence, k) for k in (self.query, self.key, self.value))
        scale = self.scale if self.scale is not None else self.head_dim ** 0.5
        scores = tf.einsum('bhmk,bhnk->bhmn', queries, keys) / scale
        valid = tf.broadcast_to(tf.cast(mask, sequence.dtype)[:, tf.newaxis, tf.newaxis, :], tf.shape(scores))
        if self.causal:
            steps = tf.shape(sequence)[1]
            valid *= tf.linalg.band_part(tf.ones(tf.stack([steps, steps]), sequence.dtype), -1, 0)  # n ≤ m
        attention = masked_softmax(scores, valid)
        return tf.einsum('bhmn,bhnk->bhmk', attention, values), attention

    def call(self, sequence, mask, joined=True):
        heads, attention = self.heads_of(sequence, mask)
        if not joined:
            return heads, attention
        concatenated = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]),
                                  [tf.shape(sequence)[0], -1, self.heads * self.head_dim])
        return tf.einsum('blk,kd->bld', concatenated, self.output_kernel), attention

    def get_config(self):
        return {**super().get_config(), 'heads': self.heads, 'head_dim': self.head_dim,
                'output_dim': self.output_dim, 'scale': self.scale, 'causal': self.causal}


class TransformerBlock(tf.keras.layers.Layer):
    """``call(sequence [B, L, d], mask [B, L], training=None) → (F [B, L, d], attention [B, heads, L, L])``.

    Args:
        heads: h.
        head_dim: d_h, the width of each head (the projections are d × h·d_h; W^O maps h·d_h back to d).
        ffn_units: width of the point-wise feed-forward layer's hidden layer (0: 4·d).
        dropout: dropout rate on MH(S) and on the feed-forward output (training only).
        activation: σ of the feed-forward layer: ``'leaky_relu'`` (BST's), ``'relu'`` or ``'gelu'`` (the exact,
            erf-based GELU of BERT and BERT4Rec).
        causal: step m attends only to the valid steps n ≤ m (:class:`MultiHeadSelfAttention`'s ``causal``).
        pre_norm: SASRec's pre-LayerNorm order (Kang & McAuley, ICDM 2018, §III-C) in place of the post-LayerNorm
            above: S' = S + Dropout(MH(LayerNorm(S))), F = S' + Dropout(FFN(LayerNorm(S'))).
        norm_epsilon: ε of the LayerNorms.
    """

    def __init__(self, heads=8, head_dim=8, ffn_units=0, dropout=0.1, activation='leaky_relu', causal=False,
                 pre_norm=False, norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f'activation must be one of {ACTIVATIONS}, got {activation!r}')
        self.heads, self.head_dim, self.ffn_units = heads, head_dim, ffn_units
        self.dropout, self.activation, self.causal = dropout, activation, causal
        self.pre_norm, self.norm_epsilon = pre_norm, norm_epsilon
        self.attention = MultiHeadSelfAttention(heads, head_dim, causal=causal, name='attention')

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.ffn_in = tf.keras.layers.Dense(self.ffn_units or 4 * d, name='ffn_in')
        self.ffn_out = tf.keras.layers.Dense(d, name='ffn_out')
        self.attention_norm = tf.keras.layers.LayerNormalization(epsilon=self.norm_epsilon, name='attention_norm')
        self.ffn_norm = tf.keras.layers.LayerNormalization(epsilon=self.norm_epsilon, name='ffn_norm')
        self.drop = tf.keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def call(self, sequence, mask, training=None):
        if self.pre_norm:
            attended, attention = self.attention(self.attention_norm(sequence), mask)
            hidden = sequence + self.drop(attended, training=training)
            transformed = self.ffn_out(activate(self.ffn_in(self.ffn_norm(hidden)), self.activation))
            outputs = hidden + self.drop(transformed, training=training)
        else:
            attended, attention = self.attention(sequence, mask)
            hidden = self.attention_norm(sequence + self.drop(attended, training=training))
            activated = activate(self.ffn_in(hidden), self.activation)
            outputs = self.ffn_norm(hidden + self.drop(self.ffn_out(activated), training=training))
        return outputs * tf.cast(mask, outputs.dtype)[..., tf.newaxis], attention

    def get_config(self):
        return {**super().get_config(), 'heads': self.heads, 'head_dim': self.head_dim, 'ffn_units': self.ffn_units,
                'dropout': self.dropout, 'activation': self.activation, 'causal': self.causal,
                'pre_norm': self.pre_norm, 'norm_epsilon': self.norm_epsilon}

"""AFM's attention-based pooling of the pairwise interactions (Xiao et al., *Attentional Factorization Machines*,
IJCAI 2017, eq. 3–5).

For field vectors e_i = x_i v_i the pair-wise interaction layer forms the n(n−1)/2 products e_i ⊙ e_j (i<j);
an attention network scores each pair and the pooled vector is their attention-weighted sum:

    a'_ij = hᵀ ReLU(W (e_i ⊙ e_j) + b),     a_ij = exp(a'_ij) / Σ_{(i,j)} exp(a'_ij),
    f_Att = Σ_{i<j} a_ij (e_i ⊙ e_j)                                                        → ``[B, k]``

with W ``[k, t]``, b ``[t]`` and h ``[t]`` for an attention factor t. Choices:

* The projection p of AFM's ŷ = w0 + Σ_i w_i x_i + pᵀ f_Att is left to the model (a ``Dense(1)``), so the
  pooled k-vector can also feed other heads.
* Dropout (rate ``dropout``, training only) is applied to the attention weights a_ij after the softmax; the
  weights returned for inspection are the ones before dropout (they sum to 1).
* The paper's L2 on the attention network is ``l2`` · ‖W‖², added in training only (0 turns it off).
* An optional field mask ``[B, n]`` takes a pair out of the softmax when either of its fields is masked; an
  example with fewer than two valid fields gets all-zero weights and a zero vector.
"""

import numpy as np
import tensorflow as tf

from rec_models.layers.softmax import masked_softmax


class AttentionalPairwisePooling(tf.keras.layers.Layer):
    """f_Att = Σ_{i<j} a_ij (e_i ⊙ e_j) with a_ij = softmax(hᵀ ReLU(W (e_i ⊙ e_j) + b)).

    ``call(fields, mask=None, training=None) → (pooled [B, k], weights [B, n(n−1)/2])``: ``fields`` ``[B, n, k]``,
    ``mask`` ``[B, n]`` of valid fields; the pairs are in ``self.pairs`` order, (0, 1), (0, 2), …, (n−2, n−1).

    Args:
        attention_factor: t, the width of the attention network's hidden layer.
        dropout: dropout rate on the attention weights (training only).
        l2: λ of the L2 penalty λ‖W‖² on the attention kernel.
    """

    def __init__(self, attention_factor=16, dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.attention_factor = attention_factor
        self.dropout = dropout
        self.l2 = l2
        self.dropout_layer = tf.keras.layers.Dropout(dropout)

    def build(self, input_shape):
        num_fields, width = int(input_shape[1]), int(input_shape[2])
        self.pairs = np.triu_indices(num_fields, k=1)
        self.kernel = self.add_weight(name='kernel', shape=(width, self.attention_factor),
                                      initializer='glorot_uniform')
        self.bias = self.add_weight(name='bias', shape=(self.attention_factor,), initializer='zeros')
        self.projection = self.add_weight(name='projection', shape=(self.attention_factor,),
                                          initializer='glorot_uniform')
        super().build(input_shape)

    def call(self, fields, mask=None, training=None):
        if training and self.l2:
            self.add_loss(self.l2 * tf.reduce_sum(tf.square(self.kernel)))
        rows, cols = self.pairs
        products = tf.gather(fields, rows, axis=1) * tf.gather(fields, cols, axis=1)        # e_i ⊙ e_j: [B, P, k]
        hidden = tf.nn.relu(tf.einsum('bpk,kt->bpt', products, self.kernel) + self.bias)
        scores = tf.einsum('bpt,t->bp', hidden, self.projection)                             # a'_ij: [B, P]
        if mask is None:
            weights = tf.nn.softmax(scores, axis=-1)
        else:
            valid = tf.cast(mask, scores.dtype)
            weights = masked_softmax(scores, tf.gather(valid, rows, axis=1) * tf.gather(valid, cols, axis=1))
        dropped = self.dropout_layer(weights, training=training)
        return tf.einsum('bp,bpk->bk', dropped, products), weights

    def get_config(self):
        return {**super().get_config(), 'attention_factor': self.attention_factor, 'dropout': self.dropout,
                'l2': self.l2}


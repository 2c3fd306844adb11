"""FAT-DeepFFM's CENet field attention (Compose-Excitation network: Zhang et al., *FAT-DeepFFM: Field Attentive
Deep Field-aware Factorization Machine*, ICDM 2019).

CENet re-weights DeepFFM's field-aware embedding matrices before the interactions. Field i's matrix EM_i holds the
n vectors v_{i,1}, …, v_{i,n} (``E[:, i]`` of ``[B, n, n, k]``).

* Compose: every vector is squeezed to one value by a 1×1 convolution over its k channels (SENet's max pooling
  replaced by a learned projection), z_{i,j} = ⟨w_c, v_{i,j}⟩ + b_c, giving the n-vector DV_i = [z_{i,1}, …, z_{i,n}];
  the DV_i are concatenated into D = [DV_1, …, DV_n] of n·n values.
* Excitation: two fully connected layers, S = σ₂(W₂ σ₁(W₁ D + b₁) + b₂), W₁ ``[n², n²/r]``, W₂ ``[n²/r, n²]``,
  σ₁ = ReLU and σ₂ = ReLU by default (as in SENet/FiBiNET, of which CENet is the variant), giving the n × n
  attention scores S = [s_{i,j}].
* Re-weight: AEM_i = [s_{i,1} v_{i,1}, …, s_{i,n} v_{i,n}], i.e. each E_{i,j} scaled by its score.

Choices: the 1×1 kernel (w_c ``[k]``, b_c) is one shared by all features and
fields, as a convolution's kernel slides over all n·n positions; the reduced width is max(1, n²// r).
"""

import tensorflow as tf


class CENetFieldAttention(tf.keras.layers.Layer):
    """``call(embeddings, return_scores=False)``: ``[B, n, n, k]`` → re-weighted ``[B, n, n, k]``, and with
    ``return_scores`` also the attention scores S ``[B, n, n]``.

    Args:
        reduction: the reduction ratio r of the first fully connected layer.
        score_activation: σ₂, any Keras activation name (``'relu'`` default, ``'sigmoid'`` bounds the scores).
    """

    def __init__(self, reduction=1, score_activation='relu', **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.score_activation = score_activation

    def build(self, input_shape):
        n, k = input_shape[1], input_shape[3]
        if input_shape[2] != n:
            raise ValueError(f'field-aware embeddings must be [B, n, n, k], got {input_shape}')
        self.compose = tf.keras.layers.Conv2D(1, kernel_size=1, name='compose')
        self.compose.build((None, n, n, k))
        self.squeeze = tf.keras.layers.Dense(max(1, n * n // self.reduction), activation='relu', name='squeeze')
        self.squeeze.build((None, n * n))
        self.excite = tf.keras.layers.Dense(n * n, activation=self.score_activation, name='excite')
        self.excite.build((None, self.squeeze.units))
        super().build(input_shape)

    def call(self, embeddings, return_scores=False):
        n = embeddings.shape[1]
        composed = tf.reshape(self.compose(embeddings), [-1, n * n])  # D = [DV_1, …, DV_n]
        scores = tf.reshape(self.excite(self.squeeze(composed)), [-1, n, n])
        weighted = embeddings * scores[..., tf.newaxis]
        return (weighted, scores) if return_scores else weighted

    def get_config(self):
        return {**super().get_config(), 'reduction': self.reduction, 'score_activation': self.score_activation}

"""Attentional factorization machine (Xiao et al., *Attentional Factorization Machines*, IJCAI 2017, eq. 3–5).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + pᵀ Σ_{i<j} a_ij (v_i ⊙ v_j) x_i x_j)
    a_ij = softmax_{(i,j)}(hᵀ ReLU(W (v_i ⊙ v_j) x_i x_j + b))

Fields and first-order weights: :class:`~rec_models.layers.FieldVectors` (e_i = v_i x_i); the attention-based
pooling f_Att: :class:`~rec_models.layers.AttentionalPairwisePooling`; p: a ``Dense(1)`` without bias (w0 is
the first-order bias). The outputs also carry ``'attention_weights'`` ``[B, n(n−1)/2]``, the a_ij (before
dropout) in pair order (0, 1), (0, 2), …, (n−2, n−1) over :attr:`FieldVectors.field_names`.

Choice: the paper's L2 on the attention kernel W (``attention_l2``) is added in training only, like the
mini-batch-aware L2, rather than as a Keras kernel regulariser (which would put a term in ``model.losses`` at
inference and, even at λ = 0, at every call).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import AttentionalPairwisePooling, FieldVectors, FMFirstOrder
from rec_models.registry import register


@register('afm')
class AFM(RankingModel):
    """AFM. ``call(features, training=False) → {'logits', 'probabilities', 'attention_weights'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k.
        attention_factor: t, the width of the attention network's hidden layer.
        dropout: dropout rate on the attention weights (training only).
        l2: λ of the mini-batch-aware L2 on the embeddings and first-order weights (0: off).
        attention_l2: λ of the L2 λ‖W‖² on the attention kernel, training only (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=8, attention_factor=16, dropout=0.0,
                 l2=1.0, attention_l2=0.0, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'attention_factor': attention_factor, 'dropout': dropout,
                        'l2': l2, 'attention_l2': attention_l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.attention = AttentionalPairwisePooling(attention_factor, dropout=dropout, l2=attention_l2, name='attention')
        self.projection = tf.keras.layers.Dense(1, use_bias=False, name='projection')

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        pooled, weights = self.attention(fields['vectors'], training=training)
        pairwise = tf.squeeze(self.projection(pooled), axis=-1)
        return click_outputs(self.first_order(fields['weights']) + pairwise, attention_weights=weights)

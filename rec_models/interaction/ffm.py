"""Field-aware factorization machine (Juan et al., *Field-aware Factorization Machines for CTR Prediction*,
RecSys 2016).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_{i,f_j}, v_{j,f_i}⟩ x_i x_j)

Every feature keeps one k-vector per field: :class:`~rec_models.layers.FieldAwareEmbedding` gives the matrices
E ``[B, n, n, k]`` (E[:, i, j] = v_{i,f_j} x_i) and :class:`~rec_models.layers.FieldAwareInteraction` ``('inner')``
the n(n−1)/2 inner products, summed. Fields: the non-sequence categorical inputs and the numerics (x_f · V_f), in
input order. First order: :class:`~rec_models.layers.FieldVectors` (``vectors=False``).

With ``use_behavior`` every behaviour sequence is one more field, a multi-hot field with weights 1/length as in
``fm`` (its matrix the masked mean of its ids' matrices, :class:`~rec_models.layers.FieldAwareEmbedding`).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldAwareEmbedding, FieldAwareInteraction, FieldVectors, FMFirstOrder
from rec_models.registry import register


@register('ffm')
class FFM(RankingModel):
    """FFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k, the width of each field-aware latent vector (a feature has n of them).
        l2: λ of the mini-batch-aware L2 on the field-aware vectors and the first-order weights (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=4, l2=1.0, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'l2': l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, use_behavior=use_behavior, l2=l2, frequencies=frequencies, vectors=False,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.embedding = FieldAwareEmbedding(inputs.with_embedding_dim(embedding_dim), l2=l2, frequencies=frequencies,
                                             use_behavior=use_behavior, name='field_aware_embedding')
        self.interaction = FieldAwareInteraction('inner')

    def call(self, features, training=False):
        logits = self.first_order(self.fields(features, training=training)['weights'])
        matrices = self.embedding(features, training=training)
        return click_outputs(logits + tf.reduce_sum(self.interaction(matrices), axis=1))

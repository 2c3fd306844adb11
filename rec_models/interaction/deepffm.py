"""DeepFFM and FAT-DeepFFM (Zhang et al., *FAT-DeepFFM: Field Attentive Deep Field-aware Factorization Machine*,
ICDM 2019).

Every field i has an embedding matrix EM_i = [v_{i,1}, …, v_{i,n}] (k × n, one vector per field it may meet;
:class:`~rec_models.layers.FieldAwareEmbedding`, the whole layer ``[B, n, n, k]``). Feature i meets feature j through
v_{i,j} and v_{j,i}, as in FFM, and the n(n−1)/2 interactions feed a DNN
(:class:`~rec_models.layers.FieldAwareInteraction`):

    inner:     a_{ij} = ⟨v_{i,j}, v_{j,i}⟩              → DNN input n(n−1)/2 wide
    hadamard:  a_{ij} = v_{i,j} ⊙ v_{j,i}                → DNN input k·n(n−1)/2 wide (the paper's better variant)
    y_DNN = MLP([a_{ij}]_{i<j})
    ŷ = sigmoid(w0 + Σ_i w_i x_i + y_DNN)

DeepFFM keeps FFM's first-order part and drops its explicit second-order sum: the interactions reach the output
through the DNN only.

FAT-DeepFFM (``attention=True``, registered as ``fat_deepffm``) re-weights the matrices with the CENet field
attention before the interactions (:class:`~rec_models.layers.CENetFieldAttention`): Compose squeezes every
v_{i,j} to one value by a 1×1 convolution, Excitation maps the n·n values through two fully connected layers to the
n × n scores S, and AEM_i = [s_{i,1} v_{i,1}, …, s_{i,n} v_{i,n}]. The scores are an extra output,
``'field_attention'`` ``[B, n, n]`` (``[b, i, j]`` = s_{i,j}, fields in :attr:`DeepFFM.field_names` order).

Fields: the categorical and numeric inputs (a numeric x_i has EM_i = x_i · V_i) and, with ``use_behavior``, the
behaviour sequences as multi-hot fields with weights 1/length (EM = the masked mean of their ids' matrices, and
the masked mean of their w in the first-order part).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import (MLP, CENetFieldAttention, FieldAwareEmbedding, FieldAwareInteraction, FieldVectors,
                               FMFirstOrder)
from rec_models.registry import register


@register('fat_deepffm', attention=True)
@register('deepffm')
class DeepFFM(RankingModel):
    """DeepFFM / FAT-DeepFFM. ``call(features, training=False) → {'logits', 'probabilities'}`` and, with
    ``attention``, ``'field_attention'``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        interaction: ``'hadamard'`` (v_{i,j} ⊙ v_{j,i}) or ``'inner'`` (⟨v_{i,j}, v_{j,i}⟩).
        attention: re-weight the embedding matrices with the CENet field attention (FAT-DeepFFM).
        reduction: CENet's reduction ratio r (unused without ``attention``).
        score_activation: CENet's σ₂ on the scores (``'relu'`` as in SENet, or e.g. ``'sigmoid'``).
        hidden_units: widths of the DNN's hidden layers.
        activation: the DNN's activation.
        dropout: dropout rate after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the field-aware tables and the first-order weights (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
        embedding_dim: k, the width of each field-aware vector v_{i,j}.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, interaction='hadamard', attention=False, reduction=1,
                 score_activation='relu', hidden_units=(200, 80), activation='relu', dropout=0.2, l2=1.0,
                 use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'interaction': interaction, 'attention': attention, 'reduction': reduction,
                        'score_activation': score_activation, 'hidden_units': tuple(hidden_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2, 'use_behavior': use_behavior,
                        'embedding_dim': embedding_dim}
        self.interaction = FieldAwareInteraction(interaction, name='interaction')  # validates the mode
        self.linear = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   first_order=True, vectors=False, name='linear')
        self.embedding = FieldAwareEmbedding(inputs.with_embedding_dim(embedding_dim), l2=l2, frequencies=frequencies,
                                             use_behavior=use_behavior, name='field_aware_embedding')
        self.field_attention = CENetFieldAttention(reduction, score_activation, name='field_attention') \
            if attention else None
        self.first_order = FMFirstOrder()
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    @property
    def field_names(self):
        """The FFM fields, in the order of the embedding matrices and of ``'field_attention'``."""
        return self.embedding.field_names

    def call(self, features, training=False):
        matrices = self.embedding(features, training=training)
        extra = {}
        if self.field_attention is not None:
            matrices, extra['field_attention'] = self.field_attention(matrices, return_scores=True)
        interactions = self.interaction(matrices)
        if interactions.shape.rank == 3:  # hadamard: [B, n(n−1)/2, k] → [B, k·n(n−1)/2]
            interactions = tf.reshape(interactions, [-1, interactions.shape[1] * interactions.shape[2]])
        deep = tf.squeeze(self.deep(interactions, training=training), axis=-1)
        logits = self.first_order(self.linear(features, training=training)['weights']) + deep
        return click_outputs(logits, **extra)

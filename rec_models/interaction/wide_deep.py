"""Wide & Deep (Cheng et al., *Wide & Deep Learning for Recommender Systems*, DLRS 2016).

    P(y=1|x) = σ(w_wideᵀ [x, φ(x)] + w_deepᵀ a^(l_f) + b)                      (the paper's eq. 3)
    a^(l+1) = ReLU(W^(l) a^(l) + b^(l)),   a^(0) = [e_1, …, e_n]                 (eq. 2)

* Wide: the first-order weights of the raw features x (:class:`~rec_models.layers.FieldVectors`' ``weights``:
  every categorical id, every numeric w_f · x_f) plus the cross-product transformations φ(x) the feature spec names
  under ``crosses:`` (:class:`~rec_models.layers.HashedFeatureCrosses`, eq. 1: φ_k = Π_{i ∈ cross k} x_i, one
  hashed weight per combination of ids). The crosses are data knowledge, so they live in the spec, the single
  source of truth, not in model code; a spec without crosses gives a wide part of the raw features only.
* Deep: the field vectors e_i of the same :class:`FieldVectors` (categorical embeddings, numerics as x_f · v_f and,
  with ``use_behavior``, the behaviour sequences as multi-valued fields) through an MLP.

Choice: the paper trains the wide part with FTRL and L1 and the deep part with AdaGrad; here one optimizer (the
Trainer's) trains both jointly, as the paper's joint training requires, with the mini-batch-aware L2 on the
embeddings and first-order weights and a batch-local L2 on the cross weights (λ · ``cross_l2_scale``, as POLY2).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, FieldVectors, FMFirstOrder, HashedFeatureCrosses
from rec_models.registry import register


@register('wide_deep')
class WideDeep(RankingModel):
    """Wide & Deep. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs (``inputs.crosses``: the spec's crosses, the wide part's φ).
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the deep part's hidden layers.
        activation: the deep part's activation.
        dropout: dropout rate after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the embeddings and the first-order weights (0: off).
        cross_l2_scale: λ' / λ of the L2 on the cross weights the batch uses.
        use_behavior: add the behaviour sequences as fields (False, True/``'mean'`` or ``'learned'``).
        embedding_dim: width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu',
                 dropout=0.2, l2=1.0, cross_l2_scale=1e-4, use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'cross_l2_scale': cross_l2_scale, 'use_behavior': use_behavior,
                        'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.crosses = HashedFeatureCrosses(inputs.crosses, l2=l2 * cross_l2_scale, name='crosses') \
            if inputs.crosses else None
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        vectors = fields['vectors']
        logits = self.first_order(fields['weights'])
        if self.crosses is not None:
            logits += self.crosses(features, training=training)
        deep = self.deep(tf.reshape(vectors, [-1, vectors.shape[1] * vectors.shape[2]]), training=training)
        return click_outputs(logits + tf.squeeze(deep, axis=-1))

"""DeepFM (Guo et al., 2017; seed ``002``): an FM component and a deep component over one shared embedding.

    ŷ = sigmoid(y_FM + y_DNN)
    y_FM = w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j
    y_DNN = MLP([e_1, …, e_n])

The fields i are every non-sequence categorical input (e_i = its embedding row, x_i = 1), every numeric input
(e_f = x_f · v_f with a learned field vector v_f, first order w_f · x_f) and, with ``use_behavior``, every
behaviour sequence as a multi-hot field with weights 1/length (e = the masked mean of its embeddings, first
order the masked mean of its w). The plain DeepFM (the default) sees no history. All fields share one width k
(``embedding_dim``): the FM inner products need it, so DeepFM sizes its tables to k whatever widths the feature
spec gives other models.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, NUMERIC, SEQUENCE, ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import (MLP, FieldEmbedding, FMFirstOrder, FMSecondOrder, LinearEmbedding,
                               MaskedMeanPooling, NumericEmbedding)
from rec_models.registry import register


@register('deepfm')
class DeepFM(RankingModel):
    """DeepFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the deep component's hidden layers.
        activation: the deep component's activation (``'relu'``, ``'prelu'`` or ``'dice'``).
        dropout: dropout rate after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the embeddings and the first-order weights (0: off); the defaults of
            ``l2`` and ``dropout`` are DIN's, so that the two are compared under the same regularisation.
        use_behavior: add the masked-mean-pooled behaviour sequences as fields.
        embedding_dim: k, the width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu',
                 dropout=0.2, l2=1.0, use_behavior=False, embedding_dim=8, **kwargs):
        inputs = inputs.with_embedding_dim(embedding_dim)
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'use_behavior': use_behavior, 'embedding_dim': embedding_dim}
        kinds = (CATEGORICAL, SEQUENCE) if use_behavior else (CATEGORICAL,)
        self.embedded = tuple(f for f in inputs.fields if f.kind in kinds)
        self.numeric = inputs.of_kind(NUMERIC)
        used = dataclasses.replace(inputs, fields=self.embedded)
        used_frequencies = {t: c for t, c in (frequencies or {}).items() if t in used.tables}
        self.embedding = FieldEmbedding(used, l2=l2, frequencies=used_frequencies, name='embedding')
        self.linear = LinearEmbedding(used, l2=l2, frequencies=used_frequencies, name='linear')
        self.numeric_vectors = NumericEmbedding([f.name for f in self.numeric], embedding_dim, name='numeric_vectors')
        self.numeric_weights = NumericEmbedding([f.name for f in self.numeric], 1, initializer='zeros',
                                                name='numeric_weights')
        self.pooling = MaskedMeanPooling() if use_behavior else None
        self.first_order = FMFirstOrder()
        self.second_order = FMSecondOrder()
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    def _fields(self, features, embeddings, numerics):
        """Field vectors ``[B, n, k]`` in field order: lookups (sequences mean-pooled), then numerics."""
        vectors = [self.pooling(embeddings[f.name], mask=self.sequence_mask(features, f))
                   if f.kind == SEQUENCE else embeddings[f.name] for f in self.embedded]
        vectors += [numerics[f.name] for f in self.numeric]
        return tf.stack(vectors, axis=1)

    def call(self, features, training=False):
        fields = self._fields(features, self.embedding(features, training=training),
                              self.numeric_vectors(features))
        weights = self._fields(features, self.linear(features, training=training), self.numeric_weights(features))
        deep = self.deep(tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]]), training=training)
        logits = self.first_order(weights) + self.second_order(fields) + tf.squeeze(deep, axis=-1)
        return click_outputs(logits)

"""Field-aware factorization machine (Juan et al., RecSys 2016; seed ``002``, the FM family's FFM).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_{i,f_j}, v_{j,f_i}⟩ x_i x_j)

Every feature keeps one k-vector per field: :class:`~rec_models.layers.FieldAwareEmbedding` gives the matrices
E ``[B, n, n, k]`` (E[:, i, j] = v_{i,f_j} x_i) and :class:`~rec_models.layers.FieldAwareInteraction` ``('inner')``
the n(n−1)/2 inner products, summed. Fields: the non-sequence categorical inputs and the numerics (x_f · V_f), in
input order. First order: :class:`~rec_models.layers.FieldVectors` (``vectors=False``).

With ``use_behavior`` (choice; :class:`FieldAwareEmbedding` itself leaves sequences out) every behaviour sequence
is one more field, a multi-hot field with weights 1/length as in ``fm``: its matrix is the masked mean of the n·k
rows of its ids, looked up in the (shared, n·k wide) table of its vocabulary. The sequence is handed to the
embedding layer as a categorical field so that the tables are sized for it; the layer looks up a placeholder
id 0 in its place, whose matrix is replaced by the pooled one. The mini-batch-aware L2 is then computed by the
model on the real ids (history ids included), with the embedding layer's own λ.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, NUMERIC, SEQUENCE, ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldAwareEmbedding, FieldAwareInteraction, FieldVectors, FMFirstOrder, \
    MaskedMeanPooling
from rec_models.registry import register


@register('ffm')
class FFM(RankingModel):
    """FFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k, the width of each field-aware latent vector (a feature has n of them).
        l2: λ of the mini-batch-aware L2 on the field-aware vectors and the first-order weights (0: off).
        use_behavior: add the behaviour sequences as multi-hot fields (weights 1/length).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=4, l2=1.0, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'l2': l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, use_behavior=use_behavior, l2=l2, frequencies=frequencies, vectors=False,
                                   name='fields')
        self.first_order = FMFirstOrder()
        sized = inputs.with_embedding_dim(embedding_dim)
        self.sequences = sized.of_kind(SEQUENCE) if use_behavior else ()
        field_inputs = dataclasses.replace(sized, fields=tuple(
            dataclasses.replace(f, kind=CATEGORICAL, max_length=None, query=None) if f in self.sequences else f
            for f in sized.fields if f.kind in (CATEGORICAL, NUMERIC) or f in self.sequences))
        used_tables = {f.table for f in field_inputs.fields if f.table is not None}
        self.embedding = FieldAwareEmbedding(
            field_inputs, l2=l2, frequencies={t: c for t, c in (frequencies or {}).items() if t in used_tables},
            name='field_aware_embedding')
        self.pooling = MaskedMeanPooling() if self.sequences else None
        self.interaction = FieldAwareInteraction('inner')

    def call(self, features, training=False):
        logits = self.first_order(self.fields(features, training=training)['weights'])
        if self.sequences:
            matrices = self._with_sequences(features, training)
        else:
            matrices = self.embedding(features, training=training)
        return click_outputs(logits + tf.reduce_sum(self.interaction(matrices), axis=1))

    def _with_sequences(self, features, training):
        """E with each sequence field's matrix the masked mean of its ids' matrices; the L2 on the real ids."""
        batch = tf.shape(features[self.model_inputs.sequence_length])[0]
        placeholders = {f.name: tf.zeros([batch], tf.int64) for f in self.sequences}
        matrices = self.embedding({**features, **placeholders}, training=False)  # its L2 would see the placeholders
        if training and self.embedding.l2:
            for table in self.embedding.tables:
                self.add_loss(self.embedding.regularization(table, features))
        n, k = len(self.embedding.field_names), self.embedding.dim
        pooled = {}
        for field in self.sequences:
            rows = tf.gather(self.embedding.tables[field.table], features[field.name])         # [B, L, n·k]
            step_mask = tf.sequence_mask(features[self.model_inputs.sequence_length], field.max_length)
            pooled[field.name] = tf.reshape(self.pooling(rows, mask=step_mask), [-1, n, k])
        columns = tf.unstack(matrices, axis=1)
        return tf.stack([pooled.get(name, column) for name, column in zip(self.embedding.field_names, columns)],
                        axis=1)

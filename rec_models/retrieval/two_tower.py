"""The sampling-bias-corrected two-tower model (Yi et al., *Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations*, RecSys 2019).

    u(x) = normalize(MLP_q([profile, context, mean-pooled history]))
    v(y) = normalize(MLP_c([item id, side features]))
    s(x, y) = ⟨u(x), v(y)⟩ / τ,     trained with the in-batch softmax corrected by −log p̂ (streaming estimate)

Registered three ways, for the paper's comparison: ``two_tower`` (streaming frequency estimate),
``two_tower_static_logq`` (static training counts) and ``two_tower_plain`` (no correction).

Choices: the towers share the embedding tables (the history's items and the candidate's id are one vocabulary);
the history is mean-pooled, as the paper's watch history is ("the average of the video id embeddings of the last
50 watches"); both towers end with a linear layer to ``embedding_dim`` and are L2-normalised (the paper's
normalisation, which its temperature τ presupposes).

Choice (not in the paper; the cold-start write-up, seed 001): ``id_dropout`` p = 0.1. In training each candidate's
item id is replaced, with probability p, by one of the item table's out-of-vocabulary buckets (drawn uniformly),
the id a new item gets at serving. Without it those rows are never trained, and a new item, although in the index
through the item feed, is embedded from a random id vector beside its side features and never reached.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.layers import MLP, FieldEmbedding
from rec_models.registry import register
from rec_models.retrieval.in_batch import InBatchRetrieval
from rec_models.retrieval.towers import context_width, pooled_context


@register('two_tower')
@register('two_tower_static_logq', logq='static')
@register('two_tower_plain', logq='none')
class TwoTower(InBatchRetrieval):
    """Query and candidate MLP towers over shared embeddings (module docstring).

    Args:
        embedding_dim: d, the width of u and v.
        hidden_units: the hidden layers of each tower.
        normalize: L2-normalise u and v.
        l2: λ of the mini-batch-aware L2 of the embedding tables.
        dropout: dropout in the towers.
        id_dropout: the probability of replacing a candidate's id by an out-of-vocabulary bucket in training
            (module docstring).
        Others: as :class:`~rec_models.retrieval.in_batch.InBatchRetrieval`.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=32, hidden_units=(128, 64),
                 normalize=True, l2=0.0, dropout=0.0, id_dropout=0.1, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f'id_dropout must lie in [0, 1), got {id_dropout}')
        self.hparams.update(embedding_dim=embedding_dim, hidden_units=tuple(hidden_units), normalize=normalize,
                            l2=l2, dropout=dropout, id_dropout=id_dropout)
        self.embedding = FieldEmbedding(inputs, l2=l2, frequencies=frequencies, name='embedding')
        self.embedding.build(None)
        self.query_tower = MLP(hidden_units, dropout=dropout, output_units=embedding_dim, name='query_tower')
        self.candidate_tower = MLP(hidden_units, dropout=dropout, output_units=embedding_dim, name='candidate_tower')
        self.query_tower.build((None, context_width(self.query_fields)))
        self.candidate_tower.build((None, context_width(self.item_fields)))

    def _normalized(self, x):
        return tf.math.l2_normalize(x, axis=-1) if self.hparams['normalize'] else x

    def query_embedding(self, features, training=False):
        if training and self.hparams['l2']:
            self.add_loss(sum(self.embedding.regularization(table, features) for table in self.embedding.tables))
        pooled = pooled_context(self.embedding, features, self.query_fields, self.model_inputs.sequence_length)
        return self._normalized(self.query_tower(pooled, training=training))

    def candidate_embedding(self, item_features, training=False):
        if training and self.hparams['id_dropout']:
            item_features = {**item_features, self.item_id.name: self.dropped_ids(item_features[self.item_id.name])}
        pooled = pooled_context(self.embedding, item_features, self.item_fields)
        return self._normalized(self.candidate_tower(pooled, training=training))

    def dropped_ids(self, ids):
        """``ids`` with each replaced, with probability ``id_dropout``, by an out-of-vocabulary bucket of the item
        table (ids index_size + 1 … num_items − 1, drawn uniformly; 0, the missing id, when the table has none)."""
        ids = tf.cast(ids, tf.int64)
        first = tf.cast(self.index_size, tf.int64) + 1
        buckets = tf.constant(self.num_items, tf.int64) - first
        oov = first + tf.random.uniform(tf.shape(ids), 0, tf.maximum(buckets, 1), dtype=tf.int64)
        oov = tf.where(buckets > 0, oov, tf.zeros_like(oov))
        return tf.where(tf.random.uniform(tf.shape(ids)) < self.hparams['id_dropout'], oov, ids)

"""The base class of the retrieval models: a query tower, a candidate tower, an item catalogue and full ranking.

A :class:`RetrievalModel` maps a user context (profile, request context, behaviour history: the spec's ``user``,
``context`` and ``behavior`` groups) to a query embedding u ``[B, d]`` (or K interest vectors ``[B, K, d]``, MIND)
and an item (the ``item`` group: id and side features) to a candidate embedding v ``[d]``; an item's score is
⟨u, v⟩ (the best interest's for K vectors). It learns from positives only: each row is one (context, clicked item)
pair, and rows whose label is 0 take no part.

**The catalogue.** The model keeps, as non-trainable variables saved with it, the side features of every item id of
the vocabulary (``catalogue/<field>``), the number of indexed ids n (ids 1…n are the vocabulary's items; 0 is
padding and ids above n are out-of-vocabulary buckets) and the training positives per id (``catalogue/counts``).
The Trainer fills them from the training data (:meth:`set_catalogue`). From them the model embeds every item
(:meth:`index_embeddings`): the index that full-ranking evaluation and the exported ``retrieve`` signature search.

**Outputs** of ``call(features, training)``: ``query`` (the query embedding the loss uses: for MIND the
label-aware attention's), ``candidates`` (the rows' positives, then extra negatives in training), ``candidate_ids``,
``candidate_log_q`` (log of each candidate's sampling probability, when the model corrects for it) and, outside
training, ``positive_rank``: how many indexed items score above the row's positive, a tie counting one half (the
expected rank when ties are broken at random, so that a constant score earns nothing; its own index entry and,
with ``exclude_seen``, the items of the row's behaviour history left out), from which the task computes
Recall@K, NDCG@K and MRR over the whole vocabulary.

**Tasks** are :mod:`rec_models.tasks.retrieval` (in-batch softmax with logQ) or
:mod:`rec_models.tasks.sampled_softmax`; a subclass declares its own.

**The item id field** is the first categorical field of the item group (the spec lists the item id first among
the item columns, as every spec here does); the behaviour sequence sharing its table is the history of seen items.
"""

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from feature_spec.model_inputs import BEHAVIOR, CATEGORICAL, CONTEXT, ITEM, NUMERIC, SEQUENCE, USER, ModelInputs
from rec_models.base import RankingModel
from rec_models.tasks.retrieval import (CANDIDATE_IDS, CANDIDATE_LOG_Q, CANDIDATES, POSITIVE_RANK, QUERY,
                                        RetrievalTask)

INTEREST_MASK = 'interest_mask'
LOGQ_MODES = ('streaming', 'static', 'none')
KIND = 'retrieval'


def item_id_field(inputs: ModelInputs):
    """The item id field: the first categorical field of the item group; ValueError when there is none."""
    for field in inputs.in_group(ITEM):
        if field.kind == CATEGORICAL:
            return field
    raise ValueError('a retrieval model needs an item id: the feature spec has no categorical column in the item '
                     f'group (item inputs: {[f.name for f in inputs.in_group(ITEM)]})')


class RetrievalModel(RankingModel):
    """Base class: subclasses build their towers and implement :meth:`query_embedding` and
    :meth:`candidate_embedding` (and, beyond the default in-batch task, declare their tasks).

    Args:
        inputs, frequencies, auc_thresholds: as :class:`~rec_models.base.RankingModel`.
        exclude_seen: leave the items of a row's behaviour history (other than its positive) out of its ranking
            in evaluation, as the papers' protocols do.
        temperature: τ of the in-batch softmax (default task).
        top_ks: the cut-offs of Recall@K and NDCG@K.
    """

    KIND = KIND
    HEADS = ()
    # Early stopping and blessing watch this metric by default.
    PRIMARY_METRIC = 'recall_at_50'
    # A multi-interest model's query is ``([B, K, d], interest mask [B, K])`` (an item scores its best interest).
    MULTI_INTEREST = False

    def __init__(self, inputs: ModelInputs, frequencies=None, exclude_seen=True, temperature=0.05,
                 top_ks=(10, 50, 100), auc_thresholds=1000, **kwargs):
        super().__init__(inputs, frequencies=frequencies, auc_thresholds=auc_thresholds, **kwargs)
        self.hparams.update(exclude_seen=exclude_seen, temperature=temperature, top_ks=tuple(top_ks))
        if int(self.PRIMARY_METRIC.rsplit('_', 1)[1]) not in self.hparams['top_ks']:
            raise ValueError(f'top_ks must include {self.PRIMARY_METRIC.rsplit("_", 1)[1]} (the metric early '
                             f'stopping watches), got {tuple(top_ks)}')
        self.item_id = item_id_field(inputs)
        self.item_fields = tuple(f for f in inputs.in_group(ITEM))
        self.query_fields = tuple(f for f in inputs.fields if f.group in (USER, CONTEXT, BEHAVIOR))
        self.seen_field = next((f for f in inputs.of_kind(SEQUENCE)
                             if f.group == BEHAVIOR and f.table == self.item_id.table), None)
        self.num_items = self.item_id.vocab_size
        self.catalogue = {}
        for field in self.item_fields:
            if field.name == self.item_id.name:
                continue
            dtype = tf.float32 if field.kind == NUMERIC else tf.int64
            self.catalogue[field.name] = tf.Variable(tf.zeros([self.num_items], dtype), trainable=False,
                                                     name=f'catalogue/{field.name}')
        self.catalogue_counts = tf.Variable(tf.zeros([self.num_items]), trainable=False, name='catalogue/counts')
        self.index_size = tf.Variable(self.num_items - 1, dtype=tf.int64, trainable=False, name='catalogue/size')
        self.set_tasks(RetrievalTask(inputs.label, temperature=temperature, top_ks=top_ks))

    @classmethod
    def served_heads(cls, hparams=None):
        del hparams
        return ()

    @property
    def primary_metric(self) -> str:
        return self.PRIMARY_METRIC

    @classmethod
    def check_hparams(cls, hparams):
        if hparams.get('temperature', 1.0) <= 0:
            raise ValueError(f'temperature must be > 0, got {hparams["temperature"]}')


    def set_catalogue(self, features: Dict[str, np.ndarray], index_size: int, counts: Optional[np.ndarray] = None):
        """Stores the side features of every item id (``{item field: [V] values}``; fields left out keep theirs),
        the number n of indexed ids (1…n) and the training positives per id."""
        if not 0 < index_size < self.num_items:
            raise ValueError(f'index_size must be in [1, {self.num_items - 1}] (the item vocabulary), got {index_size}')
        for name, values in features.items():
            if name == self.item_id.name:
                continue
            if name not in self.catalogue:
                raise ValueError(f'catalogue: {name!r} is not an item field; item fields are {list(self.catalogue)}')
            values = np.asarray(values)
            if values.shape != (self.num_items,):
                raise ValueError(f'catalogue: {name!r} has shape {values.shape}, expected ({self.num_items},)')
            self.catalogue[name].assign(values.astype(self.catalogue[name].dtype.as_numpy_dtype))
        if counts is not None:
            self.catalogue_counts.assign(np.asarray(counts, np.float32).reshape([self.num_items]))
        self.index_size.assign(index_size)

    def catalogue_features(self, ids) -> Dict[str, tf.Tensor]:
        """The item features of ``ids`` from the catalogue (the id itself included)."""
        features = {name: tf.gather(values, ids) for name, values in self.catalogue.items()}
        features[self.item_id.name] = ids
        return features

    def indexed_ids(self) -> tf.Tensor:
        """int64 ``[V]``: every id of the item table (0…V−1); :meth:`indexed_mask` says which are indexed."""
        return tf.range(self.num_items, dtype=tf.int64)

    def indexed_mask(self, ids) -> tf.Tensor:
        """bool: whether each id is one of the indexed items 1…n."""
        return tf.logical_and(ids >= 1, ids <= self.index_size)

    def index_embeddings(self, training=False):
        """The candidate embeddings ``[V, d]`` of every id of the item table (rows outside 1…n are not items)."""
        return self.candidate_embedding(self.catalogue_features(self.indexed_ids()), training=training)


    def query_embedding(self, features, training=False):
        """``[B, d]``, or ``([B, K, d], interest mask [B, K])`` for a multi-interest model."""
        raise NotImplementedError

    def candidate_embedding(self, item_features, training=False):
        """``[N, d]`` of the item features ``{item field: [N]}``."""
        raise NotImplementedError

    def item_features(self, features) -> Dict[str, tf.Tensor]:
        return {f.name: features[f.name] for f in self.item_fields}

    def training_query(self, query, candidates, interest_mask=None):
        """The query the loss uses for each row given its positive's embedding (default: the query; MIND's
        label-aware attention overrides it)."""
        del candidates, interest_mask
        return query

    @staticmethod
    def scores(query, candidates, interest_mask=None):
        """``[B, N]``: ⟨u, v⟩, or the best valid interest's max_k ⟨u_k, v⟩ for ``[B, K, d]`` queries."""
        if query.shape.rank == 2:
            return tf.matmul(query, candidates, transpose_b=True)
        per_interest = tf.einsum('bkd,nd->bkn', query, candidates)
        if interest_mask is not None:
            per_interest = tf.where(interest_mask[:, :, tf.newaxis], per_interest, -1e9)
        return tf.reduce_max(per_interest, axis=1)

    def seen_mask(self, features, rows=None) -> Optional[tf.Tensor]:
        """bool ``[B, V]``: the items of each row's behaviour history (None without a history)."""
        if self.seen_field is None or self.seen_field.name not in features:
            return None
        history = tf.cast(features[self.seen_field.name], tf.int64)
        if self.model_inputs.sequence_length in features:
            history *= tf.cast(self.sequence_mask(features, self.seen_field), tf.int64)   # padding is id 0
        rows = tf.shape(history, out_type=tf.int64)[0] if rows is None else rows
        batch = tf.repeat(tf.range(rows), tf.shape(history, out_type=tf.int64)[1])
        pairs = tf.stack([batch, tf.reshape(history, [-1])], axis=1)
        hits = tf.scatter_nd(pairs, tf.ones([tf.shape(pairs)[0]]), tf.stack([rows, self.num_items]))
        return hits > 0

    def positive_rank(self, features, query, interest_mask, candidates):
        """``[B]``: the number of indexed items scoring above each row's positive (module docstring)."""
        index = self.index_embeddings(training=False)
        scores = self.scores(query, index, interest_mask)                                # [B, V]
        positive = tf.linalg.diag_part(self.scores(query, candidates, interest_mask))     # [B]
        ids = self.indexed_ids()
        excluded = tf.logical_not(self.indexed_mask(ids))[tf.newaxis, :]
        positive_ids = tf.cast(features[self.item_id.name], tf.int64)
        excluded = tf.logical_or(excluded, tf.equal(ids[tf.newaxis, :], positive_ids[:, tf.newaxis]))
        seen = self.seen_mask(features) if self.hparams['exclude_seen'] else None
        if seen is not None:
            excluded = tf.logical_or(excluded, seen)
        kept = tf.cast(tf.logical_not(excluded), tf.float32)
        above = tf.cast(scores > positive[:, tf.newaxis], tf.float32)
        tied = tf.cast(tf.equal(scores, positive[:, tf.newaxis]), tf.float32)
        return tf.reduce_sum((above + 0.5 * tied) * kept, axis=1)

    def extra_candidates(self, features, candidates, candidate_ids, training):
        """``(candidates, ids, log q or None)`` with any extra negatives appended (default: none, no correction)."""
        del features, training
        return candidates, candidate_ids, None

    def call(self, features, training=False):
        query = self.query_embedding(features, training=training)
        interest_mask = None
        if isinstance(query, tuple):
            query, interest_mask = query
        positive_ids = tf.cast(features[self.item_id.name], tf.int64)
        positives = self.candidate_embedding(self.item_features(features), training=training)
        candidates, candidate_ids, log_q = self.extra_candidates(features, positives, positive_ids, training)
        outputs = {QUERY: self.training_query(query, positives, interest_mask), CANDIDATES: candidates,
                   CANDIDATE_IDS: candidate_ids, 'query_embedding': query}
        if interest_mask is not None:
            outputs[INTEREST_MASK] = interest_mask
        if log_q is not None:
            outputs[CANDIDATE_LOG_Q] = log_q
        if not training:
            outputs[POSITIVE_RANK] = self.positive_rank(features, query, interest_mask, positives)
        return outputs

    def rank(self, context, candidates):
        raise NotImplementedError(f'{type(self).__name__} is a retrieval model: it serves retrieve, not rank')

"""The retrieval task: a softmax over the batch's candidates with the sampling-bias correction, and the full-ranking
metrics (Yi et al., *Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations*, RecSys 2019).

A retrieval model's outputs hold the query embeddings u(x_i) ``[B, d]`` and the candidate embeddings v(y_j)
``[N, d]``: the batch's own positives first (candidate i is row i's positive), then any extra negatives (mixed
negative sampling). With s(x, y) = ⟨u(x), v(y)⟩ / τ (both towers L2-normalised by the model when it says so):

    s^c(x_i, y_j) = s(x_i, y_j) − log p_j                 (logQ correction; p_j the sampling probability of y_j)
    P_B^c(y_i | x_i) = e^{s^c(x_i, y_i)} / Σ_{j ∈ N} e^{s^c(x_i, y_j)}
    L = −1/|B⁺| Σ_{i ∈ B⁺} log P_B^c(y_i | x_i)

over the rows B⁺ whose label is positive (a retrieval model learns from positives only; the pipeline feeds it the
clicked impressions, and a negative row that gets through is neither a query nor a candidate). A candidate j ≠ i
whose id equals row i's positive id is an accidental hit: it is removed from row i's softmax (logit −∞), else the
model would be taught to push the positive away from itself.

Metrics, in evaluation (when the model reports ``positive_rank``, the number of catalogue items scored above each
row's positive, already-seen items excluded): Recall@K (= HR@K with one positive a row), NDCG@K = 1 / log₂(rank + 2)
when rank < K, and MRR = 1 / (rank + 1), over the whole item vocabulary (full ranking, Krichene & Rendle, KDD
2020: sampled metrics are not consistent with it).

Choice: TensorFlow Recommenders' ``tasks.Retrieval`` computes the same logits (its order: temperature, then the
−log p correction, then accidental hits; a test checks the two agree), but sums the loss over the batch, keeps its
metrics over its own index layer and cannot drop negative rows; the loss is computed here with the same order.
"""

from typing import Optional, Sequence

import tensorflow as tf

from rec_models.tasks.base import Task, label_of

QUERY = 'query'
CANDIDATES = 'candidates'
CANDIDATE_IDS = 'candidate_ids'
CANDIDATE_LOG_Q = 'candidate_log_q'
POSITIVE_RANK = 'positive_rank'
TOP_KS = (10, 50, 100)
NEG_INF = -1e9


def in_batch_logits(query, candidates, temperature: float = 1.0, log_q=None, query_ids=None, candidate_ids=None,
                    candidate_mask=None):
    """The corrected logits ``[B, N]`` of the in-batch softmax: ⟨u_i, v_j⟩ / τ − log p_j, with −∞ (``NEG_INF``)
    for accidental hits (``candidate_ids[j] == query_ids[i]``, j ≠ i) and for candidates outside
    ``candidate_mask``. The one helper of in-batch negatives: every retrieval loss uses it."""
    logits = tf.matmul(query, candidates, transpose_b=True) / temperature
    if log_q is not None:
        logits -= tf.reshape(log_q, [1, -1])
    rows, columns = tf.shape(logits)[0], tf.shape(logits)[1]
    diagonal = tf.cast(tf.eye(rows, columns), tf.bool)
    removed = tf.zeros_like(diagonal)
    if query_ids is not None and candidate_ids is not None:
        same = tf.equal(tf.reshape(query_ids, [-1, 1]), tf.reshape(candidate_ids, [1, -1]))
        removed = tf.logical_and(same, tf.logical_not(diagonal))
    if candidate_mask is not None:
        outside = tf.logical_not(tf.cast(tf.reshape(candidate_mask, [1, -1]), tf.bool))
        removed = tf.logical_or(removed, tf.logical_and(outside, tf.logical_not(diagonal)))
    return tf.where(removed, tf.constant(NEG_INF, logits.dtype), logits)


def rank_metrics(rank, k: int):
    """``(hit, ndcg)`` at cut-off ``k`` of float ranks (0: the positive is first)."""
    hit = tf.cast(rank < k, tf.float32)
    return hit, hit / (tf.math.log(rank + 2.0) / tf.math.log(2.0))


class RetrievalTask(Task):
    """The corrected in-batch softmax loss (module docstring) and the full-ranking metrics.

    Args:
        label: the positive label column (rows where it is 0 take no part).
        temperature: τ.
        remove_accidental_hits: drop a candidate carrying row i's positive id from row i's softmax.
        top_ks: the cut-offs K of Recall@K and NDCG@K.
        name, weight: as :class:`~rec_models.tasks.Task`.
    """

    def __init__(self, label: str, temperature: float = 1.0, remove_accidental_hits: bool = True,
                 top_ks: Sequence[int] = TOP_KS, weight: float = 1.0, name: Optional[str] = None):
        super().__init__(weight=weight, name=name or 'retrieval')
        if temperature <= 0:
            raise ValueError(f'task {self.name!r}: the temperature must be > 0, got {temperature}')
        self.label = label
        self.temperature = float(temperature)
        self.remove_accidental_hits = remove_accidental_hits
        self.top_ks = tuple(sorted(top_ks))
        self.recalls = [tf.keras.metrics.Mean(name=f'recall_at_{k}') for k in self.top_ks]
        self.ndcgs = [tf.keras.metrics.Mean(name=f'ndcg_at_{k}') for k in self.top_ks]
        self.mrr = tf.keras.metrics.Mean(name='mrr')

    def required_outputs(self):
        return (QUERY, CANDIDATES)

    def positives(self, labels, outputs):
        """``[B]`` float mask of the rows whose label is positive (every row when the batch carries no label)."""
        if self.label in labels:
            return tf.cast(label_of(labels, self.label) > 0.5, tf.float32)
        return tf.ones(tf.shape(outputs[QUERY])[:1], tf.float32)

    def logits(self, labels, outputs):
        """The corrected logits ``[B, N]`` of the batch (:func:`in_batch_logits`)."""
        query, candidates = outputs[QUERY], outputs[CANDIDATES]
        positive = self.positives(labels, outputs)
        extra = tf.shape(candidates)[0] - tf.shape(query)[0]
        candidate_mask = tf.concat([positive, tf.ones([extra], tf.float32)], axis=0)
        ids = outputs.get(CANDIDATE_IDS) if self.remove_accidental_hits else None
        return in_batch_logits(query, candidates, self.temperature, outputs.get(CANDIDATE_LOG_Q),
                               None if ids is None else ids[:tf.shape(query)[0]], ids, candidate_mask)

    def compute_loss(self, labels, outputs, features, training=False):
        logits = self.logits(labels, outputs)
        positive = self.positives(labels, outputs)
        rows = tf.shape(logits)[0]
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(rows), logits=logits)
        return tf.reduce_sum(per_row * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)

    def update_metrics(self, labels, outputs, loss):
        if POSITIVE_RANK not in outputs:
            return
        positive = self.positives(labels, outputs)
        rank = tf.cast(tf.reshape(outputs[POSITIVE_RANK], [-1]), tf.float32)
        for k, recall, ndcg in zip(self.top_ks, self.recalls, self.ndcgs):
            hit, gain = rank_metrics(rank, k)
            recall.update_state(hit, sample_weight=positive)
            ndcg.update_state(gain, sample_weight=positive)
        self.mrr.update_state(1.0 / (rank + 1.0), sample_weight=positive)

    @property
    def task_metrics(self):
        return [*self.recalls, *self.ndcgs, self.mrr]

    def reported_metrics(self, outputs):
        return self.task_metrics if POSITIVE_RANK in outputs else []

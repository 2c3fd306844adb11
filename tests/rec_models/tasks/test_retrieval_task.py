"""The retrieval task: the corrected in-batch softmax (logQ, accidental hits, temperature, negative rows left out),
its agreement with TensorFlow Recommenders' task, the full-ranking metrics, and the sampled softmax of YouTube DNN."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.tasks.retrieval import (CANDIDATE_IDS, CANDIDATE_LOG_Q, CANDIDATES, POSITIVE_RANK, QUERY,  # noqa: E402
                                        RetrievalTask, in_batch_logits)
from rec_models.tasks.sampled_softmax import ITEM_BIASES, ITEM_TABLE, POSITIVE_IDS, SampledSoftmaxTask  # noqa: E402

RNG = np.random.default_rng(0)
B, N, D = 6, 9, 4
QUERIES = RNG.normal(size=(B, D)).astype(np.float32)
CANDS = RNG.normal(size=(N, D)).astype(np.float32)
IDS = np.array([3, 5, 3, 7, 8, 9, 3, 11, 12], np.int64)     # row 2's positive is row 0's too; extra negative 6 is 3
LOG_Q = np.log(RNG.uniform(0.01, 0.5, N)).astype(np.float32)


def _reference_loss(tau, log_q, ids, positive):
    """−1/|B⁺| Σ_{i∈B⁺} log softmax_j(s_ij/τ − log q_j) at j = i, with accidental hits and negative rows' candidates
    removed, written out row by row."""
    losses = []
    for i in range(B):
        if not positive[i]:
            continue
        logits = []
        for j in range(N):
            if j != i and (ids[j] == ids[i] or (j < B and not positive[j])):
                continue
            logits.append((QUERIES[i] @ CANDS[j] / tau - log_q[j], j == i))
        values = np.array([v for v, _ in logits], np.float64)
        own = next(v for v, is_own in logits if is_own)
        losses.append(np.log(np.exp(values).sum()) - own)
    return float(np.mean(losses))


@pytest.mark.parametrize('tau', [1.0, 0.1])
def test_loss_is_the_corrected_in_batch_softmax(tau):
    task = RetrievalTask('click', temperature=tau)
    positive = np.array([1, 1, 1, 0, 1, 1], np.float32)
    outputs = {QUERY: QUERIES, CANDIDATES: CANDS, CANDIDATE_IDS: IDS, CANDIDATE_LOG_Q: LOG_Q}
    loss = float(task.compute_loss({'click': positive}, outputs, None))
    assert loss == pytest.approx(_reference_loss(tau, LOG_Q, IDS, positive.astype(bool)), rel=1e-4)


def test_each_correction_changes_the_loss_and_none_is_the_plain_softmax():
    ones = {'click': np.ones(B, np.float32)}
    full = {QUERY: QUERIES, CANDIDATES: CANDS, CANDIDATE_IDS: IDS, CANDIDATE_LOG_Q: LOG_Q}
    plain = {QUERY: QUERIES, CANDIDATES: CANDS}
    corrected = float(RetrievalTask('click').compute_loss(ones, full, None))
    without_hits = float(RetrievalTask('click', remove_accidental_hits=False).compute_loss(ones, full, None))
    uncorrected = float(RetrievalTask('click').compute_loss(ones, plain, None))
    expected_plain = np.mean([np.log(np.exp(QUERIES[i] @ CANDS.T).sum()) - QUERIES[i] @ CANDS[i] for i in range(B)])
    assert uncorrected == pytest.approx(expected_plain, rel=1e-5)
    assert len({round(corrected, 4), round(without_hits, 4), round(uncorrected, 4)}) == 3


def test_logits_agree_with_tensorflow_recommenders():
    """tfrs.tasks.Retrieval (sum reduction) on the same batch: temperature, −log q, accidental hits."""
    tfrs = pytest.importorskip('tensorflow_recommenders')
    ids = IDS[:B]
    log_q = LOG_Q[:B]
    theirs = tfrs.tasks.Retrieval(temperature=0.5, remove_accidental_hits=True)(
        tf.constant(QUERIES), tf.constant(CANDS[:B]), candidate_sampling_probability=tf.exp(tf.constant(log_q)),
        candidate_ids=tf.constant(ids), compute_metrics=False)
    ours = RetrievalTask('click', temperature=0.5).compute_loss(
        {'click': np.ones(B, np.float32)},
        {QUERY: QUERIES, CANDIDATES: CANDS[:B], CANDIDATE_IDS: ids, CANDIDATE_LOG_Q: log_q}, None)
    assert float(ours) * B == pytest.approx(float(theirs), rel=1e-4)


def test_accidental_hits_and_masked_candidates_get_minus_infinity_off_the_diagonal():
    logits = in_batch_logits(QUERIES, CANDS, 1.0, None, IDS[:B], IDS, np.array([1, 1, 0, 1, 1, 1, 1, 1, 1]))
    logits = logits.numpy()
    assert logits[0, 2] < -1e8 and logits[2, 0] < -1e8 and logits[0, 6] < -1e8    # same id 3
    assert logits[1, 2] < -1e8                                                      # candidate 2 is masked
    assert logits[2, 2] > -1e8 and logits[0, 0] > -1e8                              # the diagonal stays
    np.testing.assert_allclose(logits[1, [0, 1, 3]], QUERIES[1] @ CANDS[[0, 1, 3]].T, rtol=1e-5)


def test_full_ranking_metrics_from_positive_ranks():
    task = RetrievalTask('click', top_ks=(1, 10))
    ranks = np.array([0, 3, 12, 0], np.float32)
    task.update_metrics({'click': np.array([1, 1, 1, 0], np.float32)}, {POSITIVE_RANK: ranks}, None)
    values = {m.name: float(m.result()) for m in task.task_metrics}
    valid = ranks[:3]
    assert values['recall_at_1'] == pytest.approx(1 / 3)
    assert values['recall_at_10'] == pytest.approx(2 / 3)
    assert values['ndcg_at_10'] == pytest.approx(np.mean(np.where(valid < 10, 1 / np.log2(valid + 2), 0)), rel=1e-6)
    assert values['mrr'] == pytest.approx(np.mean(1 / (valid + 1)), rel=1e-6)
    assert task.reported_metrics({}) == [] and task.reported_metrics({POSITIVE_RANK: ranks}) == task.task_metrics


def test_sampled_softmax_is_finite_leaves_out_negative_rows_and_rejects_bad_sizes():
    table = tf.Variable(RNG.normal(size=(50, D)).astype(np.float32))
    outputs = {QUERY: QUERIES, ITEM_TABLE: table, ITEM_BIASES: tf.zeros([50]), POSITIVE_IDS: IDS[:B]}
    task = SampledSoftmaxTask('click', num_sampled=20, num_classes=50)
    with tf.GradientTape() as tape:
        loss = task.compute_loss({'click': np.ones(B, np.float32)}, outputs, None)
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert np.abs(tape.gradient(loss, table).values.numpy()).sum() > 0
    none = task.compute_loss({'click': np.zeros(B, np.float32)}, outputs, None)
    assert float(none) == 0.0
    with pytest.raises(ValueError, match='num_sampled'):
        SampledSoftmaxTask('click', num_sampled=50, num_classes=50)
    with pytest.raises(ValueError, match='temperature'):
        RetrievalTask('click', temperature=0.0)

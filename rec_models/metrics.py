"""Ranking metrics in NumPy: AUC, GAUC, csAUC, COEC and NDCG, and the calibration of a model trained on down-sampled
negatives. The Evaluator's TFMA metrics (:mod:`tfx_pipeline.metrics`) compute them with these functions.

AUC is the Mann-Whitney statistic with ties counted as one half. GAUC (Zhou et al., DIN, KDD 2018) is the
impression-weighted mean of per-user AUCs:

    GAUC = Σ_u n_u · AUC_u / Σ_u n_u,

where users whose impressions are all of one class are skipped (their AUC is undefined).
"""

import numpy as np


def auc(labels, scores) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f'labels {labels.shape} and scores {scores.shape} differ in shape')
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def gauc(labels, scores, groups) -> float:
    """Impression-weighted mean of per-group AUCs, skipping single-class groups; NaN if none remain."""
    labels = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    scores = np.asarray(scores, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if not labels.shape == scores.shape == groups.shape:
        raise ValueError('labels, scores and groups must have the same length')
    order = np.argsort(groups, kind='stable')
    groups, labels, scores = groups[order], labels[order], scores[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[starts[1:], groups.size]
    weighted, weight = 0.0, 0
    for start, end in zip(starts, ends):
        value = auc(labels[start:end], scores[start:end])
        if not np.isnan(value):
            weighted += (end - start) * value
            weight += end - start
    return weighted / weight if weight else float('nan')


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def ndcg(relevance, scores, groups) -> float:
    """The mean over groups (requests) of NDCG = DCG / IDCG, DCG = Σ_i rel_i / log2(1 + rank_i) with the items ranked
    by ``scores`` (ties in input order) and IDCG the DCG of the ranking by ``relevance`` itself (graded, ≥ 0). Groups
    whose relevance is all 0 are skipped; NaN when none is left."""
    relevance = np.asarray(relevance, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if not relevance.shape == scores.shape == groups.shape:
        raise ValueError('relevance, scores and groups must have the same length')
    by_score = np.lexsort((-scores, groups))
    by_relevance = np.lexsort((-relevance, groups))
    sorted_groups = groups[by_score]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.arange(groups.size) - np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    discount = 1.0 / np.log2(2.0 + rank)
    dcg = np.add.reduceat(relevance[by_score] * discount, starts)
    ideal = np.add.reduceat(relevance[by_relevance] * discount, starts)
    kept = ideal > 0
    return float(np.mean(dcg[kept] / ideal[kept])) if kept.any() else float('nan')


def fraction_of_ceiling(model_auc: float, bayes_auc: float) -> float:
    """How far a model's AUC has come from 0.5 towards the Bayes ceiling: (auc − 0.5) / (bayes − 0.5)."""
    return (model_auc - 0.5) / (bayes_auc - 0.5)


def csauc(labels, scores, bids) -> float:
    """CPM-sensitive AUC (Liu and Yin, *CPM-sensitive AUC for CTR prediction*, arXiv 1904.10272, 2019).

    Samples have levels: every negative the lowest, positives ordered by their bid. Over every pair of a
    higher-level x_h and a lower-level x_l (each positive–negative pair, and each pair of positives whose bids
    differ), the revenue is the bid of the one the model ranks higher (a negative's bid counts as 0):

        Rev(x_h, x_l) = bid_h if s_h > s_l, bid_l if s_h < s_l, (bid_h + bid_l) / 2 if s_h = s_l
        csAUC = Σ Rev / Σ bid_h

    1 when positives are above negatives and in bid order; a misplaced high bid costs more than a low one.
    Choice: a tie in score earns the mean of the two bids (AUC's one half; the paper does not say). Computed in
    O(n log n): each pair earns the bid of its higher-scored member, so the numerator is Σ over positives of the bid
    times the comparable samples scored below it (ties count one half). NaN without a comparable pair.
    """
    labels = np.asarray(labels, dtype=np.float64).ravel() > 0.5
    scores = np.asarray(scores, dtype=np.float64).ravel()
    bids = np.asarray(bids, dtype=np.float64).ravel()
    if not labels.shape == scores.shape == bids.shape:
        raise ValueError('labels, scores and bids must have the same length')
    _, score_rank = np.unique(scores, return_inverse=True)
    positive_rank, positive_bid = score_rank[labels], bids[labels]
    below, equal = _below_and_equal(np.sort(score_rank), positive_rank)
    # Positives of the same bid are not a pair: take them out of the counts, group by group.
    _, bid_group = np.unique(positive_bid, return_inverse=True)
    key = bid_group * (score_rank.max() + 2) + positive_rank
    same_below, same_equal = _below_and_equal(np.sort(key), key)
    same_below -= _below_and_equal(np.sort(key), bid_group * (score_rank.max() + 2))[0]
    numerator = np.sum(positive_bid * (below - same_below + 0.5 * (equal - same_equal)))
    lower_bids = np.searchsorted(np.sort(positive_bid), positive_bid, side='left')  # positives with a lower bid
    denominator = np.sum(positive_bid * ((~labels).sum() + lower_bids))
    return float(numerator / denominator) if denominator > 0 else float('nan')


def _below_and_equal(sorted_values, values):
    """For each of ``values``: how many of ``sorted_values`` are smaller, and how many equal it besides itself."""
    below = np.searchsorted(sorted_values, values, side='left')
    return below, np.searchsorted(sorted_values, values, side='right') - below - 1


def coec(clicks, positions, expected_ctr) -> float:
    """Clicks over expected clicks: Σ clicks / Σ_i CTR(position_i), with ``expected_ctr`` ``{position: CTR}`` the
    click rate of each position (the COEC note of the seed write-ups: above 1, the impressions were clicked more
    than their positions alone explain). NaN when no impression has an expected CTR."""
    positions = np.asarray(positions).ravel()
    expected = np.array([expected_ctr.get(p, np.nan) for p in positions.tolist()], dtype=np.float64)
    known = ~np.isnan(expected)
    total = expected[known].sum()
    return float(np.asarray(clicks, dtype=np.float64).ravel()[known].sum() / total) if total > 0 else float('nan')


def calibrate_negative_sampling(p, rate):
    """q = p / (p + (1 − p) / w): the probability p of a model trained on data whose negatives were kept at rate w,
    mapped back to the unsampled data (Bayes' rule on the sampled odds, which are the true odds over w). ``p`` is a
    NumPy array or a tensor (the exported signatures calibrate with it)."""
    return p / (p + (1.0 - p) / rate)

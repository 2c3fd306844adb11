"""Ranking metrics in NumPy: AUC and GAUC.

AUC is the Mann-Whitney statistic with ties counted as one half. GAUC (DIN paper, seed ``003``) is the
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


def fraction_of_ceiling(model_auc: float, bayes_auc: float) -> float:
    """How far a model's AUC has come from 0.5 towards the Bayes ceiling: (auc − 0.5) / (bayes − 0.5)."""
    return (model_auc - 0.5) / (bayes_auc - 0.5)

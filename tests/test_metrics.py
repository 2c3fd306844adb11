"""AUC and GAUC against their definitions, computed by brute force over pairs."""

import numpy as np
import pytest

from rec_models.metrics import auc, fraction_of_ceiling, gauc


def _pairwise_auc(labels, scores):
    positives, negatives = scores[labels == 1], scores[labels == 0]
    diff = positives[:, None] - negatives[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(int)
    scores = np.round(rng.random(500) + 0.2 * labels, 1)  # many ties
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)
    assert np.isnan(auc(np.zeros(5), np.arange(5)))


def test_gauc_weights_users_by_impressions_and_skips_single_class_users():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 30, 2000)
    labels = (rng.random(2000) < 0.2).astype(int)
    scores = rng.random(2000) + 0.3 * labels * (users % 3)
    users[:10], labels[:10] = 99, 0  # a user with only negatives: skipped
    expected, weight = 0.0, 0
    for user in np.unique(users):
        mask = users == user
        if 0 < labels[mask].sum() < mask.sum():
            expected += mask.sum() * _pairwise_auc(labels[mask], scores[mask])
            weight += mask.sum()
    assert gauc(labels, scores, users) == pytest.approx(expected / weight, abs=1e-12)


def test_fraction_of_ceiling():
    assert fraction_of_ceiling(0.77, 0.8) == pytest.approx(0.9)

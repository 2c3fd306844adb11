"""AUC and GAUC against their definitions, computed by brute force over pairs."""

import numpy as np
import pytest

from rec_models.metrics import auc, coec, csauc, fraction_of_ceiling, gauc, ndcg


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


def test_csauc_on_four_positives_and_one_negative():
    # Bids A 4, B 3, C 2, D 1 and a negative N: 4 positive–negative pairs and 6 positive–positive pairs. Every
    # ranking below puts the positives above N (AUC 1); csAUC charges for the high bids ranked low.
    labels, bids = [1, 1, 1, 1, 0], [4, 3, 2, 1, 0]
    assert csauc(labels, [5, 4, 3, 2, 1], bids) == pytest.approx(1.0)   # A > B > C > D > N
    # B > C > D > A > N: numerator 10 (the pairs with N) + 3 + 2 + 1 (A's pairs, won by the other) + 3 + 3 + 2,
    # denominator 10 + 4 + 4 + 4 + 3 + 3 + 2.
    assert csauc(labels, [1.5, 4, 3, 2, 1], bids) == pytest.approx(24 / 30)
    assert auc(labels, [1.5, 4, 3, 2, 1]) == 1.0
    # N above A: the pair (A, N) earns N's bid, 0; a tie earns the mean of the two bids.
    assert csauc(labels, [0.5, 4, 3, 2, 1], bids) == pytest.approx((10 - 4 + 3 + 2 + 1 + 3 + 3 + 2) / 30)
    assert csauc(labels, [4, 4, 3, 2, 1], bids) == pytest.approx((10 + 3.5 + 4 + 4 + 3 + 3 + 2) / 30)
    # Positives of one bid are not a pair; a single class has no pair at all.
    assert csauc([1, 1, 0], [1, 2, 0], [2, 2, 0]) == pytest.approx(1.0)
    assert np.isnan(csauc([1, 1], [1, 2], [2, 2]))


def test_coec_clicks_over_expected_clicks():
    # The seed's COEC note: ad A 3 clicks on 5.1 expected, ad B 2 on 2.85; B is the better ad despite fewer clicks.
    ctr = {1: 0.6, 2: 0.5, 3: 0.4, 4: 0.3, 5: 0.2, 6: 0.05}
    a_positions = [1] * 5 + [2] * 3 + [3] + [5]
    b_positions = [2] + [3] * 2 + [4] * 3 + [5] * 3 + [6]
    a = coec([1, 1, 1] + [0] * 7, a_positions, ctr)
    b = coec([1, 1] + [0] * 8, b_positions, ctr)
    assert a == pytest.approx(3 / 5.1) and b == pytest.approx(2 / 2.85) and b > a
    assert np.isnan(coec([1], [9], ctr))


def test_ndcg_per_request():
    relevance, scores, groups = [3, 2, 0, 1, 1, 0], [0.1, 0.9, 0.5, 0.2, 0.3, 0.4], [1, 1, 1, 1, 2, 2]
    first = (2 / 1 + 0 / np.log2(3) + 1 / np.log2(4) + 3 / np.log2(5)) / (3 + 2 / np.log2(3) + 1 / np.log2(4))
    second = (0 + 1 / np.log2(3)) / 1
    assert ndcg(relevance, scores, groups) == pytest.approx((first + second) / 2)
    assert ndcg([1, 2], [2, 1], [7, 7]) < 1 == ndcg([1, 2], [1, 2], [7, 7])


def _pairwise_csauc(labels, scores, bids):
    """csAUC by its definition, over every ordered pair of a higher-level and a lower-level sample."""
    numerator = denominator = 0.0
    for h in np.flatnonzero(labels == 1):
        for low in range(len(labels)):
            if low == h or (labels[low] == 1 and not bids[low] < bids[h]):
                continue
            bid_low = bids[low] if labels[low] == 1 else 0.0
            if scores[h] != scores[low]:
                numerator += bids[h] if scores[h] > scores[low] else bid_low
            else:
                numerator += (bids[h] + bid_low) / 2
            denominator += bids[h]
    return numerator / denominator


def test_csauc_matches_its_definition_on_random_samples_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = rng.integers(3, 15)
        labels, scores = rng.integers(0, 2, n), rng.integers(0, 4, n).astype(float)
        bids = rng.integers(1, 4, n).astype(float)
        labels[0], labels[1] = 1, 0
        assert csauc(labels, scores, bids) == pytest.approx(_pairwise_csauc(labels, scores, bids), abs=1e-12)

"""The Evaluator's own TFMA metrics compute their NumPy definitions over a slice's examples: GAUC per user, csAUC
with the bids of a feature, COEC with the expected CTR of each position."""

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from rec_models import metrics
from tfx_pipeline import tfma_metrics


def _combine(metric, examples):
    """Runs the metric's one combiner over ``examples`` (feature dict, label, prediction), split in two halves to
    go through a merge."""
    [computation] = metric.computations()
    combiner = computation.combiner
    halves = []
    for part in (examples[:len(examples) // 2], examples[len(examples) // 2:]):
        accumulator = combiner.create_accumulator()
        for features, label, prediction in part:
            accumulator = combiner.add_input(accumulator, metric_types.StandardMetricInputs(
                labels=np.array([label]), predictions=np.array([prediction]), example_weights=np.array([1.0]),
                features={k: np.array([v]) for k, v in features.items()}))
        halves.append(accumulator)
    return next(iter(combiner.extract_output(combiner.merge_accumulators(halves)).values()))


def test_csauc_coec_and_gauc_equal_their_definitions():
    rng = np.random.default_rng(0)
    n = 200
    labels = (rng.random(n) < 0.3).astype(float)
    scores = rng.random(n) + 0.3 * labels
    bids, positions, users = rng.integers(1, 5, n).astype(float), rng.integers(0, 4, n), rng.integers(0, 10, n)
    examples = [({'bid': b, 'position': p, 'user_id': u}, y, s)
                for b, p, u, y, s in zip(bids, positions, users, labels, scores)]
    ctr = {0: 0.4, 1: 0.3, 2: 0.2, 3: 0.1}
    assert _combine(tfma_metrics.CsAUC(bid_key='bid'), examples) == pytest.approx(metrics.csauc(labels, scores, bids))
    assert _combine(tfma_metrics.COEC(position_key='position', expected_ctr={str(k): v for k, v in ctr.items()}),
                    examples) == pytest.approx(metrics.coec(labels, positions, ctr))
    assert _combine(tfma_metrics.GAUC(group_key='user_id'), examples) == pytest.approx(
        metrics.gauc(labels, scores, users))

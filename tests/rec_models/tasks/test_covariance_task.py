"""The covariance penalty: the squared unbiased mini-batch covariance of two outputs."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models.tasks import CovariancePenalty, covariance  # noqa: E402


def test_the_penalty_is_the_squared_sample_covariance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    b += 0.5 * a
    task = CovariancePenalty('a', 'b', weight=0.7)
    loss = task.compute_loss({}, {'a': a, 'b': b}, None)
    assert float(loss) == pytest.approx(np.cov(a, b)[0, 1] ** 2, rel=1e-4)
    assert float(covariance(np.ones(1, np.float32), np.ones(1, np.float32))) == 0.0
    assert task.weight == 0.7 and [m.name for m in task.task_metrics] == ['decorrelation']

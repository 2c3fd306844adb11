"""TFX's Transform with a fixed batch size, so that its analyzers give the same figures on every run.

TFX leaves Transform's batch size to Beam's ``BatchElements``, which tunes it from the time each batch takes (and
draws it at random within ±25%): the same data is cut into other batches on every run, so the analyzers'
floating-point sums (the z-scores' means and variances) and approximate quantiles (``bucketize`` edges) can move in
their last bits. Choice: ``FIXED_BATCH_ROWS`` = 1000 rows, the cap of TFX's own tuning, for reading, analysing and
transforming alike.
"""

from typing import Optional

from tfx import v1 as tfx
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec

FIXED_BATCH_ROWS = 1000


class FixedBatchExecutor(transform_executor.Executor):
    """TFX's Transform executor, batching ``FIXED_BATCH_ROWS`` rows (TFX's own choice where it fixes one: 1 for
    sequence examples decoded as raw records)."""

    def _GetDesiredBatchSize(self, data_format: int, schema) -> Optional[int]:   # pylint: disable=invalid-name
        return super()._GetDesiredBatchSize(data_format, schema) or FIXED_BATCH_ROWS


class Transform(tfx.components.Transform):
    """``tfx.components.Transform`` run by :class:`FixedBatchExecutor` (same inputs, outputs and node id)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(FixedBatchExecutor)

"""Runs a pipeline with the LocalDagRunner or the BeamDagRunner (Beam's DirectRunner, or any runner the extra
Beam arguments select: Flink, Spark, Dataflow)."""

import absl.logging
from tfx import v1 as tfx


def run(pipeline: tfx.dsl.Pipeline, kind: str) -> None:
    """Runs every component in order; each component's start and end are logged as it goes."""
    absl.logging.set_verbosity(absl.logging.INFO)
    if kind == 'local':
        tfx.orchestration.LocalDagRunner().run(pipeline)
    elif kind == 'beam':
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner  # pylint: disable=g-import-not-at-top
        BeamDagRunner().run(pipeline)
    else:
        raise ValueError(f'unknown runner {kind!r}')

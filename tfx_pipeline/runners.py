"""Runs a pipeline with the LocalDagRunner or the BeamDagRunner (Beam's DirectRunner, or any runner the extra
Beam arguments select: Flink, Spark, Dataflow)."""

import random
from typing import Optional

import absl.logging
from tfx import v1 as tfx


def run(pipeline: tfx.dsl.Pipeline, kind: str, seed: Optional[int] = None) -> None:
    """Runs every component in order; each component's start and end are logged as it goes.

    ``seed`` (the training seed): Python's ``random`` is seeded with it first. ExampleGen shuffles its output with
    Beam's ``Reshuffle``, whose keys come from ``random``: unseeded, the same data reached Transform with its Beam
    bundles in another order on every run (with the local runner, whose Beam pipelines run in this process, a
    seeded ``Reshuffle`` repeats its output exactly). With Transform's statistics made independent of Beam's
    batching (:mod:`feature_spec.transform`), local runs in the same conditions repeat; where timings change
    Beam's bundles (load, a cold disk cache), about 20 records still move: README, "Reproducibility".
    """
    absl.logging.set_verbosity(absl.logging.INFO)
    if seed is not None:
        random.seed(seed)
    if kind == 'local':
        tfx.orchestration.LocalDagRunner().run(pipeline)
    elif kind == 'beam':
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner  # pylint: disable=g-import-not-at-top
        BeamDagRunner().run(pipeline)
    else:
        raise ValueError(f'unknown runner {kind!r}')

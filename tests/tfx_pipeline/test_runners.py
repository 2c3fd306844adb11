"""The local runner seeds Python's random, which ExampleGen's shuffle (Beam's Reshuffle) draws its keys from
(tfx_pipeline/runners.py)."""

import random

from tfx import v1 as tfx

from tfx_pipeline import runners


def test_the_local_runner_seeds_the_random_draws_of_examplegens_shuffle(monkeypatch):
    drawn = []
    monkeypatch.setattr(tfx.orchestration.LocalDagRunner, 'run',
                        lambda self, pipeline: drawn.append(random.getrandbits(64)))
    for state in (1, 2):
        random.seed(state)   # whatever ran before
        runners.run(None, 'local', seed=7)
    runners.run(None, 'local', seed=8)
    assert drawn[0] == drawn[1] != drawn[2]

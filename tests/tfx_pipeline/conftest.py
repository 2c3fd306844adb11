"""Shared fixtures of the pipeline tests.

* ``exports``: every registered model built on the ``tiny`` set's Transform output, its weights drawn at random (so
  that every input moves its outputs), and exported as the Trainer exports it; the SavedModel contract tests run on
  them, and one fresh process loads and serves them all.
* ``pipeline_run``: one pipeline run of a few models by name (single-head, multi-head, position-aware) to pushed
  SavedModels, which the serving tests serve over gRPC and REST.
* ``zoo``: one pipeline run of every registered model, ranking and retrieval (slow: ``make test-all``).
"""

import json
import os

import numpy as np
import pytest

from pipeline_cli import run_cli, write_config
from zoo_run import AUC_FLOOR, MODELS, PIPELINE_MODELS, RETRIEVAL_MODELS, SCHEDULE, Export, Zoo


def _pipeline(tiny_data, tmp_path_factory, name, models):
    tmp_path = tmp_path_factory.mktemp(name)
    config = write_config(tmp_path, tiny_data, 'zoo', auc_floor=AUC_FLOOR, model=list(models), **SCHEDULE)
    result = run_cli('run', '--config', config, timeout=3600)
    assert result.returncode == 0, result.stderr[-5000:]
    summaries = [json.loads(line) for line in result.stdout.strip().splitlines()[-len(models):]]
    return Zoo({s['model']: s for s in summaries}, tmp_path, result)


@pytest.fixture(name='pipeline_run', scope='session')
def fixture_pipeline_run(tiny_data, tmp_path_factory):
    return _pipeline(tiny_data, tmp_path_factory, 'pipeline', PIPELINE_MODELS)


@pytest.fixture(name='zoo', scope='session')
def fixture_zoo(tiny_data, tmp_path_factory):
    return _pipeline(tiny_data, tmp_path_factory, 'zoo', MODELS + RETRIEVAL_MODELS)


@pytest.fixture(name='logged', scope='session')
def fixture_logged(prepared_tiny):
    """120 logged test examples of the tiny set, serialized as served."""
    from tfx_pipeline import export  # pylint: disable=import-outside-toplevel
    return export.read_examples(prepared_tiny.raw['test'], 120)


@pytest.fixture(name='synthetic_spec', scope='session')
def fixture_synthetic_spec():
    from feature_spec import spec as spec_lib  # pylint: disable=import-outside-toplevel
    from pipeline_cli import REPO  # pylint: disable=import-outside-toplevel
    return spec_lib.load(os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml'))


def _randomise(model, seed=0):
    """N(0, 0.15²) weights, kernels at most N(0, 4/fan_in) so that deep towers do not saturate the output."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        std = 0.15
        if variable.shape.rank == 2 and 'embeddings' not in variable.name:
            std = min(std, 2.0 * float(variable.shape[0]) ** -0.5)
        variable.assign(rng.normal(0.0, std, variable.shape).astype(np.float32))


@pytest.fixture(name='exports', scope='session')
def fixture_exports(prepared_tiny, logged, tmp_path_factory):
    """``{model: Export}`` of every registered model."""
    from tfx_pipeline import export, trainer  # pylint: disable=import-outside-toplevel
    from tfx_pipeline.config import TrainingConfig  # pylint: disable=import-outside-toplevel
    root = tmp_path_factory.mktemp('exports')
    prepared, exports = prepared_tiny, {}
    for name in MODELS:
        model = trainer.build_model(prepared.spec, prepared.tft_output, TrainingConfig(model=name))
        export.predict_in_process(model, prepared.tft_output, prepared.spec, 'tfrecord', logged[:2])  # builds
        _randomise(model)
        serving = export.export_serving_model(model, prepared.tft_output, prepared.spec, 'tfrecord',
                                              str(root / name), warmup_examples=logged)
        in_process = export.heads_in_process(model, prepared.tft_output, prepared.spec, 'tfrecord', logged)
        exports[name] = Export(name, str(root / name), serving, in_process)
    return exports

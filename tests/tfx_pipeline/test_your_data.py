"""The README's "Your data" path on an imported file, and blessing (issue 16): import → ``run --data`` → pushed and
served in a fresh process with the Trainer's scores; a second run with the cache on reuses every unchanged
component (the same model, hence the same Evaluator figures) and, held to a floor it cannot clear, pushes nothing;
a model worse than the last blessed one is not pushed either."""

import glob
import json
import os

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from fresh_process import score_in_fresh_process
from pipeline_cli import run_cli, sample_predictions
from tfx_pipeline.data import public_formats
from tfx_pipeline.importers import __main__ as importer_cli

pytestmark = pytest.mark.pipeline

COMMON = ('--set', 'training.model=din', '--set', 'training.epochs=2', '--set', 'training.batch_size=64',
          '--set', 'runner.enable_cache=true')


def _run(data_dir, runs_dir, *overrides):
    result = run_cli('run', '--data', str(data_dir), '--set', f'runs_dir={runs_dir}', *COMMON, *overrides)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result


def _executions(run_dir):
    """``{component class: [execution state, …]}`` in execution order, from the run's ML Metadata store."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(run_dir, 'metadata.sqlite')
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name.rsplit('.', 1)[-1] for t in store.get_execution_types()}
    by_component = {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        by_component.setdefault(types[execution.type_id], []).append(
            metadata_store_pb2.Execution.State.Name(execution.last_known_state))
    return by_component


@pytest.fixture(name='runs', scope='module')
def fixture_runs(tmp_path_factory):
    """Three runs of the one pipeline on an imported Amazon-format file (with signal: 400 users, ~6,000 lines): blessed; the same with a floor of
    0.999 (cache on); a worse model (a learning rate of 1e-9) with no floor."""
    tmp = tmp_path_factory.mktemp('your_data')
    source = str(tmp / 'amazon.txt')
    public_formats.amazon(source, users=400, items=800, categories=40, seed=3)
    data_dir = tmp / 'amazon'
    assert importer_cli.main(['amazon', '--input', source, '--out', str(data_dir)]) == 0
    runs_dir = tmp / 'runs'
    first = _run(data_dir, runs_dir, '--set', 'evaluation.auc_floor=0.5')
    floor = _run(data_dir, runs_dir, '--set', 'evaluation.auc_floor=0.999')
    worse = _run(data_dir, runs_dir, '--set', 'evaluation.auc_floor=0.0', '--set', 'training.learning_rate=1e-9')
    return {'data': data_dir, 'run_dir': runs_dir / 'amazon', 'first': first, 'floor': floor, 'worse': worse}


def test_imported_data_runs_named_after_its_directory_and_serves_the_trainers_scores(runs, tmp_path):
    summary, _ = runs['first']
    assert summary['run_dir'] == str(runs['run_dir']) and summary['blessed'] is True
    assert summary['pushed_model'] and summary['pushed_model'].startswith(str(runs['run_dir'] / 'serving' / 'din'))
    assert summary['test_auc'] > 0.5 and summary['bayes_auc'] is None and summary['fraction_of_ceiling'] is None
    trained = glob.glob(str(runs['run_dir'] / 'pipeline' / 'Trainer' / 'model_run' / '*'))
    assert len(trained) == 2                      # the first run's model, reused by the second, and the worse one
    first_model = min(trained, key=lambda path: int(os.path.basename(path)))
    examples, expected = sample_predictions(runs['run_dir'], model_run=os.path.basename(first_model))
    served = score_in_fresh_process({summary['pushed_model']: examples}, str(tmp_path))[summary['pushed_model']]
    assert max(abs(a - b) for a, b in zip(served, expected)) < 1e-5


def test_a_second_run_reuses_the_unchanged_components_and_a_floor_it_cannot_clear_pushes_nothing(runs):
    first, _ = runs['first']
    floor, _ = runs['floor']
    states = _executions(str(runs['run_dir']))
    for node in ('ImportExampleGen', 'StatisticsGen', 'SpecSchemaGen', 'Transform', 'Trainer'):
        assert states[node][:2] == ['COMPLETE', 'CACHED'], (node, states[node])
    assert states['Evaluator'][:2] == ['COMPLETE', 'COMPLETE']          # its config changed: evaluated again
    # the same model on the same data: the same figures, not blessed under the floor, nothing new pushed
    assert (floor['test_auc'], floor['gauc'], floor['logloss']) == (first['test_auc'], first['gauc'],
                                                                    first['logloss'])
    assert floor['blessed'] is False and floor['pushed_model'] is None and floor['canary'] is False
    assert len(os.listdir(runs['run_dir'] / 'serving' / 'din')) == 1


def test_a_model_worse_than_the_last_blessed_one_is_not_pushed(runs):
    first, _ = runs['first']
    worse, _ = runs['worse']
    assert worse['test_auc'] < first['test_auc']
    assert worse['blessed'] is False and worse['pushed_model'] is None     # floor 0: only the baseline stops it
    assert os.listdir(runs['run_dir'] / 'serving' / 'din') == [os.path.basename(first['pushed_model'])]


def test_run_data_needs_an_importers_directory(tmp_path):
    result = run_cli('run', '--data', str(tmp_path))
    assert result.returncode == 2
    assert f'--data {tmp_path}: no feature_spec.yaml there' in result.stderr

"""Training on several workers (tfx_pipeline/distribute.py; trainer.run_fn under TF_CONFIG).

* TF_CONFIG: absent or empty is one process (the default strategy, the chief); the chief is the ``chief`` task or
  ``worker`` 0 without one; a malformed TF_CONFIG is a ValueError naming TF_CONFIG and the fault (``ps`` tasks
  without a chief or a worker included); retrieval models on several workers are NotImplementedError naming
  TF_CONFIG; a batch size the workers cannot split evenly names ``training.batch_size``. With ``ps`` tasks, the
  ``worker``/``ps`` tasks run servers (a strategy for them is a ValueError naming TF_CONFIG).
* The dataset split: DATA sharding, a last batch with fewer rows than workers dropped; a non-chief worker's output
  directory is a scratch directory, deleted.
* Two local worker processes (MultiWorkerMirroredStrategy, TF_CONFIG ``{'worker': [a, b]}`` on 127.0.0.1) train DIN
  for two epochs from one Transform output through ``run_fn``: both exit 0 with bitwise identical variables (Dice's
  moving moments included) and identical epoch histories (what early stopping reads); only the chief exported
  (its SavedModel holds those variables), wrote the sample predictions and showed the epochs' progress; the other
  left no directory and no scratch behind; the chief's SavedModel serves finite probabilities in [0, 1] in a fresh
  process.
* ParameterServerStrategy: the datasets ``fit`` reads are each worker's shard of the records, repeated; the callbacks
  it gets have no batch hooks (Keras refuses them under it); a chief, a worker and a ps process (TF_CONFIG on
  127.0.0.1, each through ``run_fn``) train DIN for one epoch: the worker and ps processes serve until killed, the
  chief alone exports a SavedModel holding the trained variables (read from the ps task), writes the sample
  predictions and shows the epoch; the export serves finite probabilities in [0, 1] in a fresh process.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import pytest
import tensorflow as tf

from rec_models import base
from tfx_pipeline import distribute, experiment, export, trainer
from tfx_pipeline.config import TrainingConfig

from fresh_process import score_in_fresh_process
from pipeline_cli import REPO

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'multiworker_worker.py')
TIMEOUT_S = 300    # both workers, start to end (measured: about 40 s on 2 cores); a hung collective fails here
PSS_TIMEOUT_S = 180   # the chief of the ParameterServerStrategy cluster, start to end (measured: see its test)


def _tf_config(cluster, task_type='worker', index=0):
    return {distribute.TF_CONFIG: json.dumps({'cluster': cluster, 'task': {'type': task_type, 'index': index}})}


@pytest.mark.parametrize('env', [{}, {'TF_CONFIG': ''}, {'TF_CONFIG': '  '}, {'TF_CONFIG': '{}'}])
def test_without_a_cluster_one_process_trains_with_the_default_strategy_as_the_chief(env):
    assert distribute.read_tf_config(env) is None
    strategy = distribute.strategy_from_tf_config(env)
    assert strategy is tf.distribute.get_strategy() and not distribute.is_distributed(strategy)
    assert distribute.is_chief(env)


@pytest.mark.parametrize('cluster, task_type, index, chief', [
    ({'worker': ['h:1', 'h:2']}, 'worker', 0, True),
    ({'worker': ['h:1', 'h:2']}, 'worker', 1, False),
    ({'chief': ['h:0'], 'worker': ['h:1', 'h:2']}, 'chief', 0, True),
    ({'chief': ['h:0'], 'worker': ['h:1', 'h:2']}, 'worker', 0, False),
])
def test_the_chief_is_the_chief_task_or_worker_0_without_one(cluster, task_type, index, chief):
    env = _tf_config(cluster, task_type, index)
    assert distribute.is_chief(env) is chief
    parsed = distribute.read_tf_config(env)
    assert (parsed.task_type, parsed.task_index, parsed.num_workers) == (task_type, index, sum(map(len,
                                                                                                  cluster.values())))


@pytest.mark.parametrize('text, message', [
    ('{"cluster": ', 'TF_CONFIG is not JSON'),
    ('["worker"]', 'TF_CONFIG must be a JSON object'),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}', "job 'worker' must be a non-empty list"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', '"host:port"'),
    ('{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}', 'lists an address twice'),
    ('{"cluster": {"worker": ["h:1"], "evaluator": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
     r"unsupported job\(s\) \['evaluator'\]"),
    ('{"cluster": {"chief": ["h:1", "h:2"]}, "task": {"type": "chief", "index": 0}}', 'one chief at most'),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', 'no "chief" or "worker" task'),
    ('{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {"type": "worker", "index": 0}}',
     r'a cluster with "ps" tasks \(ParameterServerStrategy\) needs a "chief" task'),
    ('{"cluster": {"chief": ["h:1"], "ps": ["h:2"]}, "task": {"type": "chief", "index": 0}}',
     'and at least one "worker"'),
    ('{"cluster": {"worker": ["h:1"]}}', '"task" must be an object'),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief' is not a job"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is out of range: the cluster has 2 'worker' task\(s\)"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}', "task index '0' is out of range"),
])
def test_a_malformed_tf_config_is_a_value_error_naming_it_and_the_fault(text, message):
    env = {distribute.TF_CONFIG: text}
    for read in (distribute.strategy_from_tf_config, distribute.is_chief):
        with pytest.raises(ValueError, match=message) as raised:
            read(env)
        assert 'TF_CONFIG' in str(raised.value)


@pytest.mark.parametrize('task_type, serves', [('chief', False), ('worker', True), ('ps', True)])
def test_with_ps_tasks_only_the_chief_trains_and_the_other_tasks_run_servers(task_type, serves):
    env = _tf_config({'chief': ['h:0'], 'worker': ['h:1'], 'ps': ['h:2']}, task_type)
    assert distribute.runs_server(distribute.read_tf_config(env)) is serves
    assert distribute.is_chief(env) is not serves
    if serves:
        with pytest.raises(ValueError, match=f"TF_CONFIG: task '{task_type}' 0 of a cluster with \"ps\" tasks runs a "
                                             'server'):
            distribute.strategy_from_tf_config(env)
    assert not distribute.runs_server(distribute.read_tf_config(_tf_config({'worker': ['h:1', 'h:2']}, 'worker', 1)))
    assert not distribute.runs_server(None)


def test_under_parameter_servers_each_worker_reads_its_shard_of_the_records_repeated():
    creator = distribute.parameter_server_data(lambda shard: tf.data.Dataset.range(5).shard(*shard))
    assert [int(x) for x in creator(tf.distribute.InputContext(2, 1, 1)).take(5)] == [1, 3, 1, 3, 1]
    assert [int(x) for x in creator(tf.distribute.InputContext(2, 0, 1)).take(4)] == [0, 2, 4, 0]
    assert (distribute.steps_over(7750, 256), distribute.steps_over(256, 256), distribute.steps_over(0, 256)) == (
        31, 1, 1)


def test_under_parameter_servers_the_callbacks_have_no_batch_hooks_and_a_nan_epoch_loss_stops_training():
    # Keras refuses a callback under ParameterServerStrategy when it implements a batch hook: what it checks.
    implements = tf.keras.callbacks.Callback._implements_train_batch_hooks  # pylint: disable=protected-access
    assert implements(trainer.NonFiniteLossGuard()) and implements(trainer.EpochProgress(1, 4, 'auc'))
    assert not implements(trainer.EpochLossGuard()) and not implements(trainer.EpochOnlyProgress(1, 4, 'auc'))
    guard = trainer.EpochLossGuard()
    guard.set_model(types.SimpleNamespace(stop_training=False))
    guard.on_epoch_begin(1)
    guard.on_epoch_end(1, {'loss': 0.3})
    with pytest.raises(FloatingPointError, match='training loss is nan at epoch 2, its end'):
        guard.on_epoch_end(1, {'loss': float('nan')})
    assert guard.model.stop_training


def test_a_retrieval_model_or_an_uneven_batch_on_several_workers_is_a_clear_error():
    two_workers = types.SimpleNamespace(num_replicas_in_sync=2)
    check = trainer._check_distributable  # pylint: disable=protected-access
    with pytest.raises(NotImplementedError, match=r"TF_CONFIG names a cluster, and retrieval model 'two_tower'"):
        check(TrainingConfig(model='two_tower'), two_workers)
    with pytest.raises(ValueError, match='training.batch_size 255 is not a multiple of the 2 workers'):
        check(TrainingConfig(model='din', batch_size=255), two_workers)
    check(TrainingConfig(model='din', batch_size=256), two_workers)


def _batches(rows):
    """Batches of 4 of ``rows`` rows, as ``(features, labels)``."""
    return tf.data.Dataset.range(rows).batch(4).map(lambda x: ({'x': x}, {'click': tf.cast(x, tf.float32)}))


@pytest.mark.parametrize('rows, kept', [(9, [4, 4]), (10, [4, 4, 2])])
def test_workers_shard_batches_by_data_and_drop_a_last_batch_smaller_than_the_workers(rows, kept):
    dataset = distribute.for_workers(_batches(rows), types.SimpleNamespace(num_replicas_in_sync=2))
    assert [int(labels['click'].shape[0]) for _, labels in dataset] == kept
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_a_non_chief_writes_into_a_scratch_directory_that_is_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    os.makedirs(tmp_path / 'tmp')
    target = str(tmp_path / 'serving')
    with distribute.worker_dir(target, chief=True) as path:
        assert path == target
    with distribute.worker_dir(target, chief=False) as path:
        assert path.startswith(str(tmp_path / 'tmp')) and os.path.basename(path) == 'serving'
        os.makedirs(path)
        open(os.path.join(path, 'saved_model.pb'), 'w').close()
    assert not os.listdir(tmp_path / 'tmp') and not os.path.exists(target)


def _free_addresses(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(('127.0.0.1', 0))
        return [f'127.0.0.1:{s.getsockname()[1]}' for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_workers(jobs, env, logs):
    """Starts one process per job; returns their exit codes (None for one still running when another failed), or
    None when they ran past TIMEOUT_S. A worker that fails stops the others at once (they would wait in a collective
    until the timeout); every process is killed on the way out."""
    processes = []
    for i, job in enumerate(jobs):
        with open(logs[i], 'w') as log:
            processes.append(subprocess.Popen([sys.executable, WORKER, *job], env=env(i), cwd=REPO, stdout=log,
                                              stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p in processes]
            if all(code is not None for code in codes) or any(code for code in codes):
                break
            time.sleep(0.5)
        codes = [p.poll() for p in processes]
        return None if None in codes and not any(codes) else codes
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def _tail(path, chars=3000):
    with open(path, errors='replace') as f:
        return f.read()[-chars:]


@pytest.mark.pipeline   # a Transform output
def test_two_workers_train_din_to_identical_weights_and_only_the_chiefs_export_stays_and_serves(prepared_tiny,
                                                                                                tmp_path):
    prepared = prepared_tiny
    addresses = _free_addresses(2)
    training = TrainingConfig(model='din', epochs=2, batch_size=256, seed=0, shuffle_buffer=1000).to_dict()
    scratch = tmp_path / 'scratch'
    jobs, logs = [], [str(tmp_path / f'worker{i}.log') for i in range(2)]
    for i in range(2):   # TFX gives every replica the same directories; here each its own, to see what each left
        job = {'train_files': [prepared.transformed['train']], 'eval_files': [prepared.transformed['eval']],
               'transform_output': os.path.dirname(prepared.tft_output.transform_savedmodel_dir),
               'serving_model_dir': str(tmp_path / f'serving{i}'), 'model_run_dir': str(tmp_path / f'run{i}'),
               'custom_config': {'training': training, 'feature_spec': experiment.DEFAULT_SPEC,
                                 'data_format': 'tfrecord', 'sample_examples': prepared.raw['test']}}
        (tmp_path / f'job{i}.json').write_text(json.dumps(job))
        jobs.append((str(tmp_path / f'job{i}.json'), str(tmp_path / f'worker{i}')))
        (scratch / str(i)).mkdir(parents=True)

    def env(i):
        return {**os.environ, 'TMPDIR': str(scratch / str(i)),
                **_tf_config({'worker': addresses}, 'worker', i)}

    codes = _run_workers(jobs, env, logs)
    tails = '\n'.join(f'--- worker {i} (exit {codes and codes[i]}):\n{_tail(log)}' for i, log in enumerate(logs))
    assert codes == [0, 0], f'a worker failed, or both ran past {TIMEOUT_S} s (exit None):\n{tails}'

    # Bitwise: every worker applies the same all-reduced update to the same values; any difference (a layer's state
    # kept per worker) would grow from there.
    weights = [np.load(str(tmp_path / f'worker{i}.npz')) for i in range(2)]
    assert sorted(weights[0].files) == sorted(weights[1].files) and any('moving_mean' in k for k in weights[0].files)
    for key in weights[0].files:
        np.testing.assert_array_equal(weights[0][key], weights[1][key], err_msg=key)
    histories = [json.loads((tmp_path / f'worker{i}.json').read_text()) for i in range(2)]
    assert histories[0] == histories[1] and len(histories[0]['val_auc']) == 2
    assert all(0.5 < auc <= 1.0 for auc in histories[0]['val_auc']), histories[0]   # all-reduced, not summed

    chief_export = str(tmp_path / 'serving0')
    assert os.path.exists(os.path.join(chief_export, 'saved_model.pb'))
    exported = base.read_exported_variables(chief_export)
    for key, value in exported.items():
        np.testing.assert_array_equal(value, weights[0][key], err_msg=key)
    assert os.path.exists(tmp_path / 'run0' / export.SAMPLE_PREDICTIONS)
    assert not os.path.exists(tmp_path / 'serving1') and not os.path.exists(tmp_path / 'run1')
    left = [name for name in os.listdir(scratch / '1') if name.startswith(distribute.SCRATCH_PREFIX)]
    assert not left, left
    assert 'epoch 2/2' in _tail(logs[0], 100_000) and 'epoch 1/2' not in _tail(logs[1], 100_000)

    examples = export.read_examples(prepared.raw['test'], 8)
    served = score_in_fresh_process({chief_export: examples}, str(tmp_path))[chief_export]
    assert served.shape == (8,) and np.all(np.isfinite(served)) and np.all((served >= 0) & (served <= 1)), served


@pytest.mark.pipeline   # a Transform output
def test_parameter_servers_train_din_on_the_chief_which_alone_exports_a_model_that_serves(prepared_tiny, tmp_path):
    prepared = prepared_tiny
    tasks = (distribute.CHIEF, distribute.WORKER, distribute.PS)
    cluster = {task: [address] for task, address in zip(tasks, _free_addresses(3))}
    training = TrainingConfig(model='din', epochs=1, batch_size=256, seed=0, shuffle_buffer=1000).to_dict()
    processes, logs = {}, {task: str(tmp_path / f'{task}.log') for task in tasks}
    try:
        for task in (distribute.PS, distribute.WORKER, distribute.CHIEF):   # the servers first, the coordinator last
            job = {'train_files': [prepared.transformed['train']], 'eval_files': [prepared.transformed['eval']],
                   'transform_output': os.path.dirname(prepared.tft_output.transform_savedmodel_dir),
                   'serving_model_dir': str(tmp_path / f'serving_{task}'),
                   'model_run_dir': str(tmp_path / f'run_{task}'),
                   'custom_config': {'training': training, 'feature_spec': experiment.DEFAULT_SPEC,
                                     'data_format': 'tfrecord', 'sample_examples': prepared.raw['test']}}
            (tmp_path / f'job_{task}.json').write_text(json.dumps(job))
            with open(logs[task], 'w') as log:
                processes[task] = subprocess.Popen(
                    [sys.executable, WORKER, str(tmp_path / f'job_{task}.json'), str(tmp_path / task)], cwd=REPO,
                    env={**os.environ, **_tf_config(cluster, task)}, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = processes[distribute.CHIEF].wait(timeout=PSS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        servers = {task: processes[task].poll() for task in (distribute.WORKER, distribute.PS)}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    tails = '\n'.join(f'--- {task}:\n{_tail(log)}' for task, log in logs.items())
    assert code == 0, f'the chief failed, or ran past {PSS_TIMEOUT_S} s (exit None):\n{tails}'
    assert servers == {distribute.WORKER: None, distribute.PS: None}, f'a server ended before the chief:\n{tails}'

    history = json.loads((tmp_path / 'chief.json').read_text())
    assert len(history['val_auc']) == 1 and 0.5 < history['val_auc'][0] <= 1.0, history
    weights = np.load(str(tmp_path / 'chief.npz'))
    assert any('moving_mean' in k for k in weights.files)
    chief_export = str(tmp_path / 'serving_chief')
    exported = base.read_exported_variables(chief_export)
    assert sorted(exported) == sorted(weights.files)
    for key, value in exported.items():
        np.testing.assert_array_equal(value, weights[key], err_msg=key)
    assert os.path.exists(tmp_path / 'run_chief' / export.SAMPLE_PREDICTIONS)
    for task in (distribute.WORKER, distribute.PS):   # they only served
        assert not os.path.exists(tmp_path / f'serving_{task}') and not os.path.exists(tmp_path / f'run_{task}')
        assert not os.path.exists(tmp_path / f'{task}.npz')
    assert 'epoch 1/1' in _tail(logs[distribute.CHIEF], 100_000)

    examples = export.read_examples(prepared.raw['test'], 8)
    served = score_in_fresh_process({chief_export: examples}, str(tmp_path))[chief_export]
    assert served.shape == (8,) and np.all(np.isfinite(served)) and np.all((served >= 0) & (served <= 1)), served

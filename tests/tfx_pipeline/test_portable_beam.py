"""Beam beyond one process: ExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform with
``--runner=PortableRunner`` against a Beam job service and an external worker pool (separate processes, on the
loopback interface: the protocol Flink's, Spark's and Dataflow's runners speak), and the same with the DirectRunner;
the transformed examples of every split (floats to 1e-5: a z-score's sums run in another order) and the
vocabularies are the same.
"""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from pipeline_cli import write_config

pytestmark = pytest.mark.pipeline


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f'exited with status {process.returncode}'
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f'nothing listens on port {port} after {timeout_s} s')


@pytest.fixture(name='beam_services')
def fixture_beam_services(tmp_path):
    """A Beam job service and an external SDK worker pool, each in its own process; their ports."""
    job, pool = _free_port(), _free_port()
    # The pool starts SDK workers as `python -m …`: the virtual environment's python must come first on PATH.
    env = {**os.environ, 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
    commands = {job: ['apache_beam.runners.portability.local_job_service_main', '--port', str(job)],
                pool: ['apache_beam.runners.worker.worker_pool_main', '--service_port', str(pool)]}
    processes = []
    try:
        for port, command in commands.items():
            log = open(tmp_path / f'{port}.log', 'w')  # pylint: disable=consider-using-with
            processes.append(subprocess.Popen([sys.executable, '-m', *command], env=env, stdout=log,
                                              stderr=subprocess.STDOUT))
            _wait_listening(port, processes[-1])
        yield job, pool, tmp_path
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=60)


def _run_to_transform(tiny_data, tmp_path, name, beam_args):
    """Runs the pipeline up to Transform; its Transform output directory."""
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel
    from tfx.orchestration.pipeline import RunOptions  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import config as config_lib  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import pipeline as pipeline_lib  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import validation  # pylint: disable=import-outside-toplevel
    tmp_path.mkdir()
    config = config_lib.load(write_config(tmp_path, tiny_data, name), [f'runner.beam_args={json.dumps(beam_args)}'])
    pipeline = pipeline_lib.create_pipeline(config, validation.validate(config))
    tfx.orchestration.LocalDagRunner().run(pipeline, run_options=RunOptions(to_nodes=['Transform']))
    [transform] = glob.glob(os.path.join(config.pipeline_root, 'Transform'))
    return transform


def _examples(transform_dir, split):
    """The transformed rows of ``split``, each ``(integer features, float features)``, in a canonical order."""
    files = sorted(glob.glob(os.path.join(transform_dir, 'transformed_examples', '*', f'Split-{split}', '*')))
    assert files, (transform_dir, split)
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        ints = tuple((name, tuple(f.int64_list.value)) for name, f in sorted(features.items()))
        floats = tuple((name, tuple(f.float_list.value)) for name, f in sorted(features.items()))
        rows.append((ints, floats))
    return sorted(rows, key=lambda row: (row[0], [np.round(v, 4).tolist() for _, v in row[1]]))


def _assert_same(portable, direct, split):
    """Integer features equal; floats to 1e-5 (a z-score's mean and variance are sums in another order)."""
    assert len(portable) == len(direct), split
    for (ints, floats), (direct_ints, direct_floats) in zip(portable, direct):
        assert ints == direct_ints, split
        for (name, values), (_, expected) in zip(floats, direct_floats):
            np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6, err_msg=f'{split} {name}')


def _vocabularies(transform_dir):
    assets = glob.glob(os.path.join(transform_dir, 'transform_graph', '*', 'transform_fn', 'assets', '*'))
    assert assets
    contents = {}
    for path in assets:
        with open(path, 'rb') as f:
            contents[os.path.basename(path)] = f.read()
    return contents


def test_transform_on_a_portable_runner_equals_the_direct_runners(beam_services, tiny_data):
    job, pool, tmp_path = beam_services
    portable = _run_to_transform(tiny_data, tmp_path / 'portable', 'portable', [
        '--runner=PortableRunner', f'--job_endpoint=localhost:{job}', '--environment_type=EXTERNAL',
        f'--environment_config=localhost:{pool}'])
    direct = _run_to_transform(tiny_data, tmp_path / 'direct', 'direct', [])
    with open(tmp_path / f'{job}.log') as f:
        assert 'Completed job' in f.read()   # the job service ran the Beam jobs, not the DirectRunner
    assert _vocabularies(portable) == _vocabularies(direct)
    for split in ('train', 'eval', 'test'):
        _assert_same(_examples(portable, split), _examples(direct, split), split)

"""The command line: ``python -m serving.server`` serves, prints where it listens, and stops cleanly on SIGTERM; bad
flags exit 2 naming the flag."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import model_manager, server, signatures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTENING = re.compile(r'serving: gRPC on 0\.0\.0\.0:(\d+), REST on 0\.0\.0\.0:(\d+), models: tiny$')


def _spawn(log_path, *argv) -> subprocess.Popen:
    """Starts the server; stdout is a pipe, stderr (the log) goes to ``log_path``."""
    env = {**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'TF_CPP_MIN_LOG_LEVEL': '2'}
    with open(log_path, 'w') as log:
        return subprocess.Popen([sys.executable, '-m', 'serving.server', *argv], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=log)


def test_serves_until_sigterm_and_exits_0(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(2,))
    process = _spawn(tmp_path / 'server.log', '--port', '0', '--rest_api_port', '-1', '--model_name', 'tiny',
                     '--model_base_path', base, '--tensorflow_intra_op_parallelism', '1')
    bad = _spawn(tmp_path / 'bad.log', '--model_base_path', base, '--port', 'eighty')  # imports TF meanwhile
    try:
        line = process.stdout.readline().strip()
        match = LISTENING.match(line)
        assert match, (line, (tmp_path / 'server.log').read_text())
        grpc_port, rest_port = map(int, match.groups())
        with grpc.insecure_channel(f'localhost:{grpc_port}') as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                tiny.predict_request('tiny', [1.0]), timeout=30)
        assert tf.make_ndarray(response.outputs[signatures.PROBABILITIES]).tolist() == pytest.approx(
            tiny.probability(2, [1.0]).tolist(), rel=1e-6)
        with urllib.request.urlopen(f'http://localhost:{rest_port}/v1/models/tiny', timeout=30) as reply:
            assert json.loads(reply.read())['model_version_status'][0]['state'] == 'AVAILABLE'
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert bad.wait(timeout=120) == 2
        assert "argument --port: invalid int value: 'eighty'" in (tmp_path / 'bad.log').read_text()
    finally:
        for child in (process, bad):
            if child.poll() is None:
                child.kill()
            child.communicate()


@pytest.mark.parametrize('argv, message', [
    (['--model_base_path', 'MISSING'], '--model_base_path MISSING: not a directory'),
    (['--model_config_file', 'CONFIG'], '--model_config_file CONFIG: 1:1 : Message type'),
    (['--model_config_file', 'MISSING'], '--model_config_file MISSING: cannot read it'),
    ([], 'one of --model_base_path or --model_config_file is required'),
    (['--model_base_path', 'BASE', '--model_config_file', 'CONFIG'], 'exclude each other'),
    (['--model_base_path', 'BASE', '--port', '70000'], '--port must be in [0, 65535]'),
    (['--model_base_path', 'BASE', '--file_system_poll_wait_seconds', '-1'], '--file_system_poll_wait_seconds'),
    (['--model_base_path', 'BASE', '--max_batch_rows', '0'], '--max_batch_rows must be >= 1'),
    (['--model_base_path', 'BASE', '--tensorflow_intra_op_parallelism', '-1'], '--tensorflow_intra_op_parallelism'),
])
def test_bad_flags_exit_2_naming_the_flag_or_file(tmp_path, capsys, argv, message):
    config = tmp_path / 'models.config'
    config.write_text('not a config')
    paths = {'MISSING': str(tmp_path / 'missing'), 'CONFIG': str(config), 'BASE': str(tmp_path)}
    argv = [paths.get(arg, arg) for arg in argv]
    for key, path in paths.items():
        message = message.replace(key, path)
    assert server.main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_flags_exit_2():
    with pytest.raises(SystemExit) as info:
        server.parse_flags(['--model_base_path', '/', '--nope'])
    assert info.value.code == 2


def test_thread_counts_after_tensorflow_started_are_refused(tiny, tmp_path):
    tf.constant(1.0) + 1.0  # TensorFlow has started in this process
    config = model_manager.config_from_flags('tiny', tiny.base(str(tmp_path)))
    with pytest.raises(ValueError, match='--tensorflow_intra_op_parallelism: TensorFlow has already started'):
        server.ModelServer(config, server.ServerOptions(port=0, tensorflow_intra_op_parallelism=1)).start()

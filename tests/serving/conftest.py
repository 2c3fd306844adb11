"""Fixtures of the model server tests: a tiny SavedModel that follows :mod:`serving.signatures`, model directories
and in-process servers.

The tiny model parses a tf.Example with one float feature ``x`` and scores ``sigmoid(version * x)``: the version is
baked into the weight, so a score tells which version answered. ``rank`` adds a float ``u`` of its scalar context.
"""

import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Optional

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (model_service_pb2_grpc, predict_pb2, prediction_log_pb2,  # noqa: E402
                                     prediction_service_pb2_grpc)

from serving import signatures  # noqa: E402
from serving.server import ModelServer, ServerOptions  # noqa: E402


class _Tiny(tf.Module):
    """The four contract signatures over tf.Examples with a float feature ``x``; weight = version."""

    def __init__(self, version: int):
        super().__init__()
        self.w = tf.Variable(float(version))

    def _score(self, serialized):
        x = tf.io.parse_example(serialized, {'x': tf.io.FixedLenFeature([], tf.float32)})['x']
        return tf.sigmoid(self.w * x)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def predict(self, examples):
        return {signatures.PROBABILITIES: self._score(examples)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.string)])
    def rank(self, context, candidates):
        u = tf.io.parse_single_example(context, {'u': tf.io.FixedLenFeature([], tf.float32)})['u']
        x = tf.io.parse_example(candidates, {'x': tf.io.FixedLenFeature([], tf.float32)})['x']
        return {signatures.PROBABILITIES: tf.sigmoid(self.w * x + u)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def classify(self, inputs):
        p = self._score(inputs)
        classes = tf.tile(tf.constant([['0', '1']]), [tf.shape(p)[0], 1])
        return {signatures.CLASSIFY_CLASSES: classes, signatures.CLASSIFY_SCORES: tf.stack([1 - p, p], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def regress(self, inputs):
        return {signatures.REGRESS_OUTPUTS: self._score(inputs)}


class TinyModels:
    """Exports of the tiny model (built once per version and session) and model directories made of them."""

    def __init__(self, root: str):
        self._root = root
        self._exports: Dict[int, str] = {}

    def export(self, version: int) -> str:
        """The export of ``version`` (do not modify it; copy it with :meth:`copy_version`)."""
        if version not in self._exports:
            path = os.path.join(self._root, 'exports', str(version))
            module = _Tiny(version)
            tf.saved_model.save(module, path, signatures={
                signatures.PREDICT: module.predict, signatures.RANK: module.rank,
                signatures.CLASSIFY: module.classify, signatures.REGRESS: module.regress})
            signatures.set_method_names(path)
            self._exports[version] = path
        return self._exports[version]

    def copy_version(self, base_path: str, version: int, as_version: Optional[int] = None) -> str:
        """Copies the export of ``version`` to ``base_path/<as_version or version>`` (atomically: via a rename)."""
        target = os.path.join(base_path, str(as_version or version))
        staging = os.path.join(base_path, f'.staging-{as_version or version}')
        shutil.copytree(self.export(version), staging)
        os.rename(staging, target)
        return target

    def base(self, parent: str, versions: Iterable[int] = (1,), name: str = 'tiny') -> str:
        """A model base path ``parent/name`` holding ``versions``."""
        path = os.path.join(parent, name)
        os.makedirs(path, exist_ok=True)
        for version in versions:
            self.copy_version(path, version)
        return path

    @staticmethod
    def example(**features) -> tf.train.Example:
        """A tf.Example of float features."""
        proto = tf.train.Example()
        for name, value in features.items():
            proto.features.feature[name].float_list.value.append(value)
        return proto

    @staticmethod
    def serialized(xs: Iterable[float]) -> List[bytes]:
        return [TinyModels.example(x=x).SerializeToString() for x in xs]

    @staticmethod
    def probability(version: int, x, u: float = 0.0) -> np.ndarray:
        return 1 / (1 + np.exp(-(version * np.asarray(x, np.float64) + u)))

    @staticmethod
    def predict_request(model: str, xs: Iterable[float], **spec) -> predict_pb2.PredictRequest:
        """A Predict request on ``serving_default`` (``spec``: version, version_label, signature_name)."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if 'version' in spec:
            request.model_spec.version.value = spec.pop('version')
        for key, value in spec.items():
            setattr(request.model_spec, key, value)
        request.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto(TinyModels.serialized(xs), dtype=tf.string))
        return request

    @staticmethod
    def write_warmup(version_dir: str, requests: Iterable[predict_pb2.PredictRequest]) -> None:
        """Writes TF Serving's warmup file of Predict requests into a version directory."""
        path = os.path.join(version_dir, signatures.WARMUP_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tf.io.TFRecordWriter(path) as writer:
            for request in requests:
                writer.write(prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())


def _slow_copy(source: str, target: str, pause: float) -> None:
    """Copies a directory the way a non-atomic push does: file by file, each file in two halves."""
    for root, _, files in os.walk(source):
        directory = os.path.join(target, os.path.relpath(root, source))
        os.makedirs(directory, exist_ok=True)
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                data = f.read()
            with open(os.path.join(directory, name), 'wb') as f:
                for part in (data[:len(data) // 2], data[len(data) // 2:]):
                    f.write(part)
                    f.flush()
                    time.sleep(pause)


@pytest.fixture(name='slow_copy', scope='session')
def fixture_slow_copy() -> Callable[[str, str, float], None]:
    """``slow_copy(source, target, pause)``: a push that copies file by file, each file in two halves."""
    return _slow_copy


@pytest.fixture(scope='session')
def tiny(tmp_path_factory) -> TinyModels:
    return TinyModels(str(tmp_path_factory.mktemp('tiny')))


class Running:
    """An in-process server with stubs on one channel."""

    def __init__(self, server: ModelServer):
        self.server = server
        self.channel = grpc.insecure_channel(f'localhost:{server.grpc_port}')
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    @property
    def rest_url(self) -> str:
        return f'http://localhost:{self.server.rest_port}'


@pytest.fixture
def start_server() -> Callable[..., Running]:
    """Starts servers (``start_server(config, **ServerOptions fields)``, free ports, fast polling); all stop at the
    end of the test."""
    running = []

    def start(config, **options) -> Running:
        options = {'port': 0, 'host': 'localhost', 'file_system_poll_wait_seconds': 0.1, 'grace_seconds': 1.0,
                   **options}
        server = Running(ModelServer(config, ServerOptions(**options)).start())
        running.append(server)
        return server

    yield start
    for server in running:
        server.channel.close()
        server.server.stop()

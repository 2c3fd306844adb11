"""Warmup: replays a version's ``assets.extra/tf_serving_warmup_requests`` before the version serves.

The file is a TFRecord of ``tensorflow.serving.PredictionLog`` (TF Serving's format). Each ``predict_log``,
``classify_log`` or ``regress_log`` request runs through :class:`serving.inference.Inference`, the code path of real
requests (so the first real request finds every function traced and every lazy initialisation done). As in TF
Serving, any failing record fails the load, other log types are refused, and at most :data:`MAX_RECORDS` records are
read. The model name and version of the logged requests are ignored: they run on the version being loaded.
"""

import os

import tensorflow as tf
from google.protobuf import message
from tensorflow_serving.apis import prediction_log_pb2

from serving import errors
from serving import signatures

MAX_RECORDS = 1000


def warm_up(version, inference) -> int:
    """Runs the warmup requests of ``version`` (a :class:`serving.model_manager.LoadedVersion`).

    Returns:
        The number of requests run (0 when the version has no warmup file).

    Raises:
        ServingError: naming the record that failed.
    """
    path = os.path.join(version.path, signatures.WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        count += 1
        if count > MAX_RECORDS:
            raise errors.invalid_argument(f'Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}')
        try:
            _replay(prediction_log_pb2.PredictionLog.FromString(record), version, inference)
        except message.DecodeError as e:
            raise errors.invalid_argument(f'{path}: record {count} is not a PredictionLog: {e}') from e
        except errors.ServingError as e:
            raise errors.ServingError(e.code, f'{path}: warmup record {count} failed: {e.message}') from e
    return count


def _replay(log: prediction_log_pb2.PredictionLog, version, inference) -> None:
    kind = log.WhichOneof('log_type')
    if kind == 'predict_log':
        inference.predict(version, log.predict_log.request)
    elif kind == 'classify_log':
        inference.classify(version, log.classify_log.request)
    elif kind == 'regress_log':
        inference.regress(version, log.regress_log.request)
    else:
        raise errors.invalid_argument(f'Unsupported log_type for warmup: {kind}')

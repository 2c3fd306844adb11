"""Malformed requests: 1,200 random bad requests each get the error class TF Serving gives, and the server goes on
serving."""

import concurrent.futures
import random

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, predict_pb2,
                                     regression_pb2)

from serving import model_manager, signatures

INVALID = {grpc.StatusCode.INVALID_ARGUMENT}
MAX_ROWS = 64
MAX_BYTES = 1 << 20


def _predict(rng, tiny, inputs=None, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop('name', 'tiny')
    for key, value in spec.items():
        if key == 'version':
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    if inputs is None:
        inputs = {signatures.EXAMPLES: tf.make_tensor_proto(tiny.serialized(rng.random() for _ in range(3)),
                                                            dtype=tf.string)}
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    return request


def _examples_request(kind, rng, tiny, count, signature_name):
    request = kind()
    request.model_spec.name, request.model_spec.signature_name = 'tiny', signature_name
    request.input.example_list.examples.extend(tiny.example(x=rng.random()) for _ in range(count))
    return request


def _garbage(rng, length=None) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(length or rng.randint(1, 64)))


def _cases(rng, tiny):
    """(RPC name, request, expected codes) generators, one per kind of bad request."""

    def garbage_examples():
        values = [_garbage(rng) for _ in range(rng.randint(1, 4))]
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: tf.make_tensor_proto(values, dtype=tf.string)}), \
            INVALID

    def wrong_dtype():
        dtype = rng.choice([tf.float32, tf.int64, tf.int32, tf.bool, tf.float64])
        proto = tf.make_tensor_proto(np.zeros(rng.randint(1, 5)), dtype=dtype)
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), INVALID

    def wrong_rank():
        shape = rng.choice([[], [1, 1], [2, 1, 1], [1, 2]])
        proto = tf.make_tensor_proto(np.full(shape, b'x', dtype=object), dtype=tf.string, shape=shape)
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), INVALID

    def bad_shape_proto():
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b'a'] * rng.randint(3, 6))
        proto.tensor_shape.dim.add().size = rng.choice([-1, 2])  # negative, or fewer elements than values
        if rng.random() < 0.3:
            proto.tensor_shape.unknown_rank = True
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), INVALID

    def bad_dtype_enum():
        proto = tensor_pb2.TensorProto(dtype=rng.choice([0, 20, 21, 101, 999]), string_val=[b'a'])
        proto.tensor_shape.dim.add().size = 1
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), INVALID

    def too_many_rows():
        rows = rng.randint(MAX_ROWS + 1, 10 ** 12)
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b'a'])  # one value broadcast
        proto.tensor_shape.dim.add().size = rows
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), {grpc.StatusCode.RESOURCE_EXHAUSTED}

    def too_many_examples():
        request = _examples_request(regression_pb2.RegressionRequest, rng, tiny, MAX_ROWS + rng.randint(1, 10),
                                    signatures.REGRESS)
        return 'Regress', request, {grpc.StatusCode.RESOURCE_EXHAUSTED}

    def too_many_bytes():
        proto = tf.make_tensor_proto([_garbage(rng, 1024)] * (MAX_BYTES // 1024 + 8), dtype=tf.string)
        return 'Predict', _predict(rng, tiny, {signatures.EXAMPLES: proto}), {grpc.StatusCode.RESOURCE_EXHAUSTED}

    def empty_examples():
        kind, name, method = rng.choice([(classification_pb2.ClassificationRequest, signatures.CLASSIFY, 'Classify'),
                                         (regression_pb2.RegressionRequest, signatures.REGRESS, 'Regress')])
        return method, _examples_request(kind, rng, tiny, 0, name), INVALID

    def unknown_model():
        return 'Predict', _predict(rng, tiny, name=_garbage(rng).hex()), {grpc.StatusCode.NOT_FOUND}

    def unknown_version():
        return 'Predict', _predict(rng, tiny, version=rng.choice([0, 1, 3, 2 ** 40])), {grpc.StatusCode.NOT_FOUND}

    def unknown_label():
        return 'Predict', _predict(rng, tiny, version_label=_garbage(rng).hex()), INVALID

    def unknown_signature():
        name = rng.choice(['nope', '__saved_model_init_op', _garbage(rng).hex()])
        return 'Predict', _predict(rng, tiny, signature_name=name), {grpc.StatusCode.INVALID_ARGUMENT}

    def unknown_or_missing_input():
        inputs = {rng.choice(['nope', signatures.CONTEXT, 'examples ']): tf.make_tensor_proto([b'a'])}
        if rng.random() < 0.5:
            inputs[signatures.EXAMPLES] = tf.make_tensor_proto([b'a'])
        return 'Predict', _predict(rng, tiny, inputs), INVALID

    def missing_rank_input():
        inputs = {signatures.CANDIDATES: tf.make_tensor_proto(tiny.serialized([1.0]), dtype=tf.string)}
        return 'Predict', _predict(rng, tiny, inputs, signature_name=signatures.RANK), INVALID

    def wrong_method():
        kind, name, method = rng.choice([
            (classification_pb2.ClassificationRequest, signatures.PREDICT, 'Classify'),
            (classification_pb2.ClassificationRequest, signatures.REGRESS, 'Classify'),
            (regression_pb2.RegressionRequest, signatures.CLASSIFY, 'Regress'),
            (regression_pb2.RegressionRequest, signatures.RANK, 'Regress'),
            (regression_pb2.RegressionRequest, 'nope', 'Regress')])
        return method, _examples_request(kind, rng, tiny, rng.randint(1, 3), name), INVALID

    def garbage_example_list():
        request = _examples_request(classification_pb2.ClassificationRequest, rng, tiny, 2, signatures.CLASSIFY)
        request.input.example_list.examples[0].features.feature['x'].bytes_list.value.append(_garbage(rng))
        return 'Classify', request, INVALID

    def bad_metadata():
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=rng.choice([[], ['nope']]))
        request.model_spec.name = 'tiny'
        return 'GetModelMetadata', request, INVALID

    def bad_status():
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = rng.choice(['tiny', 'nope'])
        request.model_spec.version.value = rng.choice([0, 7, 2 ** 40])
        return 'GetModelStatus', request, {grpc.StatusCode.NOT_FOUND}

    def garbage_request():
        return 'raw', _garbage(rng, rng.randint(1, 200)), {grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT,
                                                           grpc.StatusCode.NOT_FOUND}

    return [garbage_examples, wrong_dtype, wrong_rank, bad_shape_proto, bad_dtype_enum, too_many_rows,
            too_many_examples, too_many_bytes, empty_examples, unknown_model, unknown_version, unknown_label,
            unknown_signature, unknown_or_missing_input, missing_rank_input, wrong_method, garbage_example_list,
            bad_metadata, bad_status, garbage_request]


def test_malformed_requests_get_errors_and_the_server_keeps_serving(tiny, tmp_path, start_server):
    server = start_server(model_manager.config_from_flags('tiny', tiny.base(str(tmp_path), versions=(2,))),
                          max_batch_rows=MAX_ROWS, max_receive_message_length=MAX_BYTES)
    calls = {
        'Predict': server.predictions.Predict, 'Classify': server.predictions.Classify,
        'Regress': server.predictions.Regress, 'GetModelMetadata': server.predictions.GetModelMetadata,
        'GetModelStatus': server.models.GetModelStatus,
        'raw': server.channel.unary_unary('/tensorflow.serving.PredictionService/Predict'),
    }
    rng = random.Random(1234)
    cases = _cases(rng, tiny)
    # Every kind of case at least 20 times, the rest at random: 1,200 requests.
    requests = [case() for case in cases * 20] + [rng.choice(cases)() for _ in range(1200 - 20 * len(cases))]

    def send(item):
        method, request, expected = item
        try:
            calls[method](request, timeout=30)
        except grpc.RpcError as e:
            return method, e.code(), expected, e.details()
        return method, grpc.StatusCode.OK, expected, ''

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, requests))
    wrong = [result for result in results if result[1] not in result[2]]
    assert not wrong, wrong[:5]
    assert len(results) == 1200

    response = server.predictions.Predict(tiny.predict_request('tiny', [0.5, 1.0]), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[signatures.PROBABILITIES]),
                               tiny.probability(2, [0.5, 1.0]), rtol=1e-6)

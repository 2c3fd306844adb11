"""Server-side batching: concurrent requests share batches and get the answers they get unbatched."""

import concurrent.futures
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving import batching, model_manager, server, signatures


class _Doubler:
    """A batch-major function (outputs = 2 * inputs) that records the batches it ran and fails on negative rows."""

    def __init__(self):
        self.batches = []
        self._lock = threading.Lock()

    def __call__(self, inputs):
        with self._lock:
            self.batches.append(len(inputs['x']))
        if (inputs['x'] < 0).any():
            raise ValueError('negative input')
        return {'y': inputs['x'] * 2, 'n': np.arange(len(inputs['x']))}


def _run_concurrently(batcher, key, run, arrays):
    with concurrent.futures.ThreadPoolExecutor(len(arrays)) as pool:
        futures = [pool.submit(batcher.run, key, run, {'x': array}) for array in arrays]
        return [future.exception() or future.result() for future in futures]


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    batcher = batching.Batcher(batching.BatchingOptions(max_batch_size=32, batch_timeout_micros=100_000,
                                                        num_batch_threads=1))
    run = _Doubler()
    arrays = [np.full((i % 3 + 1, 2), i, np.float32) for i in range(12)]
    try:
        results = _run_concurrently(batcher, 'key', run, arrays)
    finally:
        batcher.stop()
    for array, result in zip(arrays, results):
        np.testing.assert_array_equal(result['y'], array * 2)
        assert len(result['n']) == len(array)
    assert max(batcher.batch_sizes()) > 1
    assert len(run.batches) < len(arrays) and max(run.batches) <= 32


def test_a_failing_request_fails_alone_and_oversized_requests_run_unbatched():
    batcher = batching.Batcher(batching.BatchingOptions(max_batch_size=4, batch_timeout_micros=100_000,
                                                        num_batch_threads=2))
    run = _Doubler()
    arrays = [np.ones((1, 1), np.float32), -np.ones((1, 1), np.float32), np.ones((2, 1), np.float32),
              np.ones((9, 1), np.float32)]
    try:
        results = _run_concurrently(batcher, 'key', run, arrays)
    finally:
        batcher.stop()
    assert isinstance(results[1], ValueError)
    for i in (0, 2, 3):
        np.testing.assert_array_equal(results[i]['y'], arrays[i] * 2)
    assert 9 in run.batches  # the oversized request ran by itself


def test_only_batch_major_signatures_are_batched():
    assert batching.batchable({'examples': tf.TensorSpec([None], tf.string)})
    assert not batching.batchable({'context': tf.TensorSpec([], tf.string),
                                   'candidates': tf.TensorSpec([None], tf.string)})
    assert not batching.batchable({'x': tf.TensorSpec([3], tf.float32)})


def test_batched_server_answers_equal_unbatched_answers(tiny, tmp_path, start_server):
    config = model_manager.config_from_flags('tiny', tiny.base(str(tmp_path), versions=(2,)))
    options = batching.BatchingOptions(max_batch_size=64, batch_timeout_micros=50_000, num_batch_threads=1)
    batched = start_server(config, batching_options=options)
    plain = start_server(config)
    requests = [tiny.predict_request('tiny', np.linspace(-2, 2, i % 4 + 1) + i) for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: batched.predictions.Predict(r, timeout=30), requests))
    for request, answer in zip(requests, answers):
        expected = plain.predictions.Predict(request, timeout=30).outputs[signatures.PROBABILITIES]
        np.testing.assert_array_equal(tf.make_ndarray(answer.outputs[signatures.PROBABILITIES]),
                                      tf.make_ndarray(expected))
        assert answer.model_spec.version.value == 2
    assert max(batched.server.batcher.batch_sizes()) > 1

    rank = predict_pb2.PredictRequest()  # scalar context: bypasses batching
    rank.model_spec.name, rank.model_spec.signature_name = 'tiny', signatures.RANK
    rank.inputs[signatures.CONTEXT].CopyFrom(tf.make_tensor_proto(tiny.example(u=1.0).SerializeToString()))
    rank.inputs[signatures.CANDIDATES].CopyFrom(tf.make_tensor_proto(tiny.serialized([0.0]), dtype=tf.string))
    np.testing.assert_allclose(
        tf.make_ndarray(batched.predictions.Predict(rank, timeout=30).outputs[signatures.PROBABILITIES]),
        tiny.probability(2, [0.0], u=1.0), rtol=1e-6)
    with pytest.raises(grpc.RpcError) as info:  # a bad request in a batch fails alone
        bad = tiny.predict_request('tiny', [1.0])
        bad.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto([b'garbage'], dtype=tf.string))
        batched.predictions.Predict(bad, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_batching_flags():
    _, options = server.parse_flags(['--model_base_path', '/', '--enable_batching', '--max_batch_size', '8'])
    assert options.batching_options.max_batch_size == 8
    _, options = server.parse_flags(['--model_base_path', '/', '--enable_batching=false', '--max_batch_size', '8'])
    assert options.batching_options is None
    with pytest.raises(ValueError, match='--batching_parameters_file is not supported'):
        server.parse_flags(['--model_base_path', '/', '--batching_parameters_file', 'batching.config'])
    with pytest.raises(ValueError, match='--max_batch_size must be >= 1'):
        server.parse_flags(['--model_base_path', '/', '--enable_batching', '--max_batch_size', '0'])

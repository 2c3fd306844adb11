"""serving.client against an in-process fake TF Serving (PredictionService and ModelService on a random port):
requests follow the signature contract, UNAVAILABLE is retried and nothing else is, deadlines hold, and the CLI
prints one JSON line per example and exits 1 on server errors, 2 on bad flags and files."""

import concurrent.futures
import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from feature_spec import spec as spec_lib
from serving import examples as examples_lib
from serving import signatures
from serving.client import ServingClient, ServingError, main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PATH = os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml')
MODEL = 'ranker'
LATEST = 9
LABELS = {'stable': 7}


def _score(serialized: bytes) -> np.float32:
    """The fake model: a score in [0, 1) that depends on every byte of the example."""
    return np.float32(zlib.crc32(serialized) / 2 ** 32)


class FakeServing(prediction_service_pb2_grpc.PredictionServiceServicer,
                  model_service_pb2_grpc.ModelServiceServicer):
    """Answers like TF Serving with the fake model; can fail or stall first. Records every request."""

    def __init__(self):
        self.reset()

    def reset(self):
        if hasattr(self, 'stop'):
            self.stop.set()        # releases a call still stalled by the previous test
        self.requests = []         # (rpc name, request), one per attempt
        self.failures = []         # status codes to answer, one per call, before answering normally
        self.always = None         # a status code to answer every call with
        self.delay_s = 0.0
        self.heads = ()            # the named heads a multi-head model serves besides the probabilities
        self.stop = threading.Event()

    def _begin(self, rpc, request, context):
        self.requests.append((rpc, request))
        if self.delay_s:
            self.stop.wait(self.delay_s)
            if not context.is_active():  # the client gave up; answer nothing from a later test's settings
                context.abort(grpc.StatusCode.CANCELLED, 'the client is gone')
        code = self.always or (self.failures.pop(0) if self.failures else None)
        if code is not None:
            context.abort(code, f'fake {code.name} for {rpc}')
        served = type(request.model_spec)()
        served.CopyFrom(request.model_spec)
        if served.version_label:
            if served.version_label not in LABELS:
                context.abort(grpc.StatusCode.NOT_FOUND, f'no version labelled {served.version_label!r}')
            served.version.value = LABELS[served.version_label]
            served.ClearField('version_label')
        elif not served.HasField('version'):
            served.version.value = LATEST
        return served

    def Predict(self, request, context):
        served = self._begin('Predict', request, context)
        key = signatures.CANDIDATES if request.model_spec.signature_name == signatures.RANK else signatures.EXAMPLES
        scores = [_score(e) for e in tf.make_ndarray(request.inputs[key]).tolist()]
        response = predict_pb2.PredictResponse(model_spec=served)
        response.outputs[signatures.PROBABILITIES].CopyFrom(tf.make_tensor_proto(np.array(scores, np.float32)))
        for k, head in enumerate(self.heads, start=2):
            response.outputs[head].CopyFrom(tf.make_tensor_proto(np.array(scores, np.float32) / k))
        return response

    def Classify(self, request, context):
        served = self._begin('Classify', request, context)
        response = classification_pb2.ClassificationResponse(model_spec=served)
        for example in _examples(request):
            score = float(_score(example.SerializeToString()))
            response.result.classifications.add().classes.extend([
                classification_pb2.Class(label='0', score=1 - score), classification_pb2.Class(label='1', score=score)])
        return response

    def Regress(self, request, context):
        served = self._begin('Regress', request, context)
        response = regression_pb2.RegressionResponse(model_spec=served)
        for example in _examples(request):
            response.result.regressions.add().value = float(_score(example.SerializeToString()))
        return response

    def GetModelMetadata(self, request, context):
        served = self._begin('GetModelMetadata', request, context)
        signature = meta_graph_pb2.SignatureDef(method_name=signatures.PREDICT_METHOD)
        signature.inputs[signatures.EXAMPLES].dtype = types_pb2.DT_STRING
        signature.outputs[signatures.PROBABILITIES].dtype = types_pb2.DT_FLOAT
        for head in self.heads:
            signature.outputs[head].dtype = types_pb2.DT_FLOAT
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=served)
        response.metadata['signature_def'].Pack(
            get_model_metadata_pb2.SignatureDefMap(signature_def={signatures.PREDICT: signature}))
        return response

    def GetModelStatus(self, request, context):
        served = self._begin('GetModelStatus', request, context)
        available = get_model_status_pb2.ModelVersionStatus(
            version=served.version.value, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[available])


def _examples(request):
    model_input = request.input
    if model_input.HasField('example_list'):
        return list(model_input.example_list.examples)
    merged = []  # TF Serving merges the context into each example
    for example in model_input.example_list_with_context.examples:
        full = tf.train.Example()
        full.CopyFrom(model_input.example_list_with_context.context)
        full.MergeFrom(example)
        merged.append(full)
    return merged


@pytest.fixture(scope='module')
def fake():
    servicer = FakeServing()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    servicer.port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    yield servicer
    servicer.stop.set()
    server.stop(None)


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.reset()


@pytest.fixture(scope='module')
def spec():
    return spec_lib.load(SPEC_PATH)


def _target(fake) -> str:
    return f'127.0.0.1:{fake.port}'


def _rows(spec, count):
    """``count`` distinct rows of every serving column (values by the spec's types), plus a label."""
    rows = []
    for i in range(count):
        row = {spec.labels[0]: i % 2}
        for name, column in examples_lib.ExampleEncoder(spec).columns.items():
            value = {'int64': i + 1, 'float32': i + 0.5, 'string': f'v{i}'}[column.dtype]
            row[name] = [value] * i if column.is_list else value
        rows.append(row)
    return rows


def _sent(fake, index=0, key=signatures.EXAMPLES):
    return tf.make_ndarray(fake.requests[index][1].inputs[key]).tolist()


def test_predict_sends_every_kind_of_example_and_returns_scores_in_order(fake, spec):
    rows = _rows(spec, 3)
    encoder = examples_lib.ExampleEncoder(spec)
    given = [rows[0], encoder.encode(rows[1]), encoder.encode(rows[2]).SerializeToString()]
    with ServingClient(_target(fake), MODEL, spec=spec) as client:
        result = client.predict(given)
    (rpc, request), = fake.requests
    assert rpc == 'Predict' and request.model_spec.name == MODEL
    assert request.model_spec.signature_name == signatures.PREDICT
    assert [d.size for d in request.inputs[signatures.EXAMPLES].tensor_shape.dim] == [3]
    sent = _sent(fake)
    assert [tf.train.Example.FromString(s) for s in sent] == [encoder.encode(r) for r in rows]
    assert spec.labels[0] not in tf.train.Example.FromString(sent[0]).features.feature
    np.testing.assert_array_equal(result.scores, [_score(s) for s in sent])
    assert result.scores.dtype == np.float32 and result.version == LATEST
    assert result.signature_name == signatures.PREDICT


def test_examples_must_be_a_sequence_and_dicts_need_the_spec(fake, spec):
    with ServingClient(_target(fake), MODEL) as client:
        with pytest.raises(ValueError, match=r'examples\[0\]: a dict example needs the feature spec'):
            client.predict(_rows(spec, 1))
        with pytest.raises(TypeError, match='wrap a single example in a list'):
            client.predict(_rows(spec, 1)[0])
        with pytest.raises(ValueError, match='examples: no examples'):
            client.predict([])
        with pytest.raises(ValueError, match=r'examples\[1\]: not a serialized tf.train.Example'):
            client.classify([tf.train.Example(), b'\xff\xff not a proto'])
    assert not fake.requests


def test_version_and_label_go_in_the_model_spec(fake, spec):
    example = examples_lib.to_example(_rows(spec, 1)[0], spec)
    with ServingClient(_target(fake), MODEL, version=3) as client:
        assert client.predict([example]).version == 3
    with ServingClient(_target(fake), MODEL, version_label='stable') as client:
        assert client.predict([example]).version == LABELS['stable']
    with ServingClient(_target(fake), MODEL, version=0) as client:
        assert client.predict([example]).version == 0
    versioned, labelled, zero = (request.model_spec for _, request in fake.requests)
    assert versioned.version.value == 3 and not versioned.version_label
    assert labelled.version_label == 'stable' and not labelled.HasField('version')
    assert zero.HasField('version') and zero.version.value == 0
    with pytest.raises(ValueError, match='version and version_label'):
        ServingClient(_target(fake), MODEL, version=3, version_label='stable')
    with ServingClient(_target(fake), MODEL, version_label='canary') as client:
        with pytest.raises(ServingError, match="NOT_FOUND: no version labelled 'canary'") as raised:
            client.predict([example])
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_rank_sends_a_scalar_context_and_a_vector_of_candidates(fake, spec):
    rows = _rows(spec, 4)
    context, _ = examples_lib.split_for_rank(examples_lib.to_example(rows[0], spec), spec)
    candidates = [examples_lib.split_for_rank(examples_lib.to_example(r, spec), spec)[1] for r in rows]
    with ServingClient(_target(fake), MODEL, spec=spec) as client:
        result = client.rank(context, candidates)
    (_, request), = fake.requests
    assert request.model_spec.signature_name == signatures.RANK
    assert set(request.inputs) == {signatures.CONTEXT, signatures.CANDIDATES}
    assert list(request.inputs[signatures.CONTEXT].tensor_shape.dim) == []
    assert [d.size for d in request.inputs[signatures.CANDIDATES].tensor_shape.dim] == [4]
    assert tf.train.Example.FromString(tf.make_ndarray(request.inputs[signatures.CONTEXT]).item()) == context
    sent = _sent(fake, key=signatures.CANDIDATES)
    assert [tf.train.Example.FromString(s) for s in sent] == candidates
    np.testing.assert_array_equal(result.scores, [_score(s) for s in sent])
    assert result.scores.shape == (4,) and result.version == LATEST


def test_unavailable_twice_then_success_takes_three_attempts(fake, spec):
    fake.failures = [grpc.StatusCode.UNAVAILABLE] * 2
    with ServingClient(_target(fake), MODEL, max_retries=3, initial_backoff_s=0.01) as client:
        result = client.predict([examples_lib.to_example(_rows(spec, 1)[0], spec)])
    assert len(fake.requests) == 3 and result.scores.shape == (1,)


def test_always_unavailable_raises_after_max_retries_with_backoff(fake, spec, monkeypatch):
    """The waits, without a clock: the client's sleep and jitter are replaced, so the test reads the waits it asked
    for (doubling from initial_backoff_s, capped by max_backoff_s, each drawn between half and all of it)."""
    from serving import client as client_lib  # pylint: disable=import-outside-toplevel
    drawn, slept = [], []
    monkeypatch.setattr(client_lib, 'random', type('Jitter', (), {'uniform': staticmethod(
        lambda low, high: drawn.append((low, high)) or high)}))
    monkeypatch.setattr(client_lib, 'time', type('Clock', (), {'sleep': staticmethod(slept.append)}))
    fake.always = grpc.StatusCode.UNAVAILABLE
    with ServingClient(_target(fake), MODEL, max_retries=3, initial_backoff_s=0.1, max_backoff_s=0.3) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([examples_lib.to_example(_rows(spec, 1)[0], spec)])
    assert len(fake.requests) == 4 and raised.value.attempts == 4
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
    assert 'UNAVAILABLE: fake UNAVAILABLE for Predict (after 4 attempts)' in str(raised.value)
    assert drawn == pytest.approx([(0.05, 0.1), (0.1, 0.2), (0.15, 0.3)])   # 0.1, 0.2, then 0.4 capped at 0.3
    assert slept == pytest.approx([0.1, 0.2, 0.3])


def test_other_errors_are_not_retried(fake, spec):
    fake.failures = [grpc.StatusCode.INVALID_ARGUMENT]
    with ServingClient(_target(fake), MODEL, max_retries=3, initial_backoff_s=0.01) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([examples_lib.to_example(_rows(spec, 1)[0], spec)])
    assert len(fake.requests) == 1 and raised.value.attempts == 1
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details == 'fake INVALID_ARGUMENT for Predict'
    assert f"Predict to {_target(fake)} model 'ranker' signature 'serving_default'" in str(raised.value)


def test_a_server_slower_than_the_deadline_raises_deadline_exceeded_quickly(fake, spec):
    fake.delay_s = 5.0
    start = time.perf_counter()
    with ServingClient(_target(fake), MODEL, timeout_s=0.3, max_retries=3) as client:
        with pytest.raises(ServingError) as raised:
            client.predict([examples_lib.to_example(_rows(spec, 1)[0], spec)])
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and raised.value.attempts == 1
    assert time.perf_counter() - start < 2


def test_no_server_is_unavailable_after_retries():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with ServingClient(f'127.0.0.1:{port}', MODEL, max_retries=1, initial_backoff_s=0.01) as client:
        with pytest.raises(ServingError) as raised:
            client.status()
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE and raised.value.attempts == 2


def test_classify_and_regress_use_example_lists_with_and_without_context(fake, spec):
    rows = _rows(spec, 3)
    parts = [examples_lib.split_for_rank(examples_lib.to_example(r, spec), spec) for r in rows]
    context, candidates = parts[0][0], [candidate for _, candidate in parts]
    with ServingClient(_target(fake), MODEL, spec=spec) as client:
        classified = client.classify(candidates, context=context)
        regressed = client.regress(rows)
    (_, classify), (_, regress) = fake.requests
    assert classify.model_spec.signature_name == signatures.CLASSIFY
    assert classify.input.example_list_with_context.context == context
    assert list(classify.input.example_list_with_context.examples) == candidates
    expected = [_score(e.SerializeToString()) for e in _examples(classify)]
    np.testing.assert_array_equal(classified.classes, [['0', '1']] * 3)
    np.testing.assert_allclose(classified.scores[:, 1], expected)
    assert regress.model_spec.signature_name == signatures.REGRESS and regress.input.HasField('example_list')
    np.testing.assert_array_equal(regressed.scores, [_score(e.SerializeToString()) for e in _examples(regress)])
    assert classified.version == regressed.version == LATEST


def test_a_multi_head_models_heads_come_back_by_name(fake, spec, tmp_path, capsys):
    fake.heads = ('cvr', 'ctcvr')
    rows = _rows(spec, 3)
    with ServingClient(_target(fake), 'ranker', spec=spec) as client:
        result = client.predict(rows)
        assert client.metadata().heads == ['ctcvr', 'cvr']
    assert list(result.heads) == ['ctcvr', 'cvr']
    np.testing.assert_allclose(result.heads['cvr'], result.scores / 2, rtol=1e-6)
    np.testing.assert_allclose(result.heads['ctcvr'], result.scores / 3, rtol=1e-6)
    path = tmp_path / 'rows.jsonl'
    path.write_text('\n'.join(json.dumps(r) for r in rows))
    assert main(['predict', '--target', _target(fake), '--model', 'ranker', '--examples', str(path),
                 '--feature_spec', SPEC_PATH]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line['heads']['cvr'] for line in printed] == pytest.approx([line['score'] / 2 for line in printed])


def test_metadata_and_status(fake):
    with ServingClient(_target(fake), MODEL, version=4) as client:
        metadata = client.metadata()
        statuses = client.status()
    (_, metadata_request), (_, status_request) = fake.requests
    assert list(metadata_request.metadata_field) == ['signature_def']
    assert metadata_request.model_spec.version.value == status_request.model_spec.version.value == 4
    assert set(metadata.signature_defs) == {signatures.PREDICT} and metadata.version == 4
    assert metadata.signature_defs[signatures.PREDICT].method_name == signatures.PREDICT_METHOD
    assert [(s.version, s.state, s.error_code) for s in statuses] == [(4, 'AVAILABLE', 'OK')]


def test_closed_client_refuses_calls(fake):
    with ServingClient(_target(fake), MODEL) as client:
        client.status()
    with pytest.raises(ValueError):
        client.status()


# ---------------------------------------------------------------------------------------------------------------
# Command line.


def _write_csv(path, rows):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(rows[0])
        for row in rows:
            writer.writerow([' '.join(map(str, v)) if isinstance(v, list) else v for v in row.values()])
    return str(path)


def _cli(*argv):
    return subprocess.Popen([sys.executable, '-m', 'serving.client', *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'TF_CPP_MIN_LOG_LEVEL': '3'})


def test_cli_predict_and_rank_print_one_json_line_per_example(fake, spec, tmp_path):
    rows = _rows(spec, 5)
    examples = _write_csv(tmp_path / 'rows.csv', rows)
    context = tmp_path / 'context.jsonl'
    context.write_text(json.dumps(rows[0]) + '\n')
    common = ['--target', _target(fake), '--model', MODEL, '--feature_spec', SPEC_PATH]
    # Both processes at once: most of their time is importing TensorFlow.
    predict = _cli('predict', *common, '--examples', examples, '--batch_size', '2', '--version', '5')
    rank = _cli('rank', *common, '--context', str(context), '--candidates', examples)
    predicted, ranked = predict.communicate(timeout=120), rank.communicate(timeout=120)
    assert predict.returncode == 0 and rank.returncode == 0, predicted[1] + ranked[1]
    calls = sorted(fake.requests, key=lambda call: call[1].model_spec.signature_name)
    rank_request, predict_requests = calls[0][1], [request for _, request in calls[1:]]
    assert rank_request.model_spec.signature_name == signatures.RANK
    sizes = [tf.make_ndarray(r.inputs[signatures.EXAMPLES]).size for r in predict_requests]
    assert sorted(sizes) == [1, 2, 2] and all(r.model_spec.version.value == 5 for r in predict_requests)
    sent = [e for r in predict_requests for e in tf.make_ndarray(r.inputs[signatures.EXAMPLES]).tolist()]
    sent.sort(key=lambda e: [tf.train.Example.FromString(e) == examples_lib.to_example(r, spec)
                             for r in rows].index(True))
    lines = [json.loads(line) for line in predicted[0].splitlines()]
    assert lines == [{'index': i, 'score': float(str(_score(e))), 'version': 5} for i, e in enumerate(sent)]

    context_sent = tf.train.Example.FromString(tf.make_ndarray(rank_request.inputs[signatures.CONTEXT]).item())
    assert set(context_sent.features.feature) == set(spec.context_columns)
    candidates = tf.make_ndarray(rank_request.inputs[signatures.CANDIDATES]).tolist()
    assert [set(tf.train.Example.FromString(c).features.feature) for c in candidates] == \
        [set(spec.candidate_columns)] * 5
    lines = [json.loads(line) for line in ranked[0].splitlines()]
    assert lines == [{'index': i, 'score': float(str(_score(c))), 'version': LATEST} for i, c in enumerate(candidates)]


def test_cli_server_error_exits_1_with_code_and_message(fake, spec, tmp_path, capsys):
    fake.always = grpc.StatusCode.FAILED_PRECONDITION
    examples = _write_csv(tmp_path / 'rows.csv', _rows(spec, 2))
    assert main(['predict', '--target', _target(fake), '--model', MODEL, '--examples', examples]) == 1
    out, err = capsys.readouterr()
    assert out == '' and 'FAILED_PRECONDITION: fake FAILED_PRECONDITION for Predict' in err


def test_cli_metadata_and_status_print_json(fake, capsys):
    common = ['--target', _target(fake), '--model', MODEL, '--version_label', 'stable']
    assert main(['metadata', *common]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata['model'] == MODEL and metadata['version'] == LABELS['stable']
    assert metadata['signature_def'][signatures.PREDICT]['method_name'] == signatures.PREDICT_METHOD
    assert main(['status', *common]) == 0
    assert json.loads(capsys.readouterr().out)['model_version_status'] == [
        {'version': LABELS['stable'], 'state': 'AVAILABLE', 'error_code': 'OK', 'error_message': ''}]


def test_cli_classification_signature_goes_through_classify(fake, spec, tmp_path, capsys):
    examples = _write_csv(tmp_path / 'rows.csv', _rows(spec, 2))
    assert main(['predict', '--target', _target(fake), '--model', MODEL, '--examples', examples,
                 '--signature', signatures.CLASSIFY]) == 0
    (rpc, request), = fake.requests
    assert rpc == 'Classify' and request.model_spec.signature_name == signatures.CLASSIFY
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [set(line['scores']) for line in lines] == [{'0', '1'}] * 2


@pytest.mark.parametrize('argv, message', [
    (['predict', '--model', MODEL, '--examples', 'x.csv'], 'the following arguments are required: --target'),
    (['predict', '--target', 'h:1', '--model', MODEL, '--examples', 'x.csv', '--batch_size', '0'],
     "argument --batch_size: '0' is not a positive integer"),
    (['status', '--target', 'h:1', '--model', MODEL, '--version', '1', '--version_label', 'a'],
     'argument --version_label: not allowed with argument --version'),
    (['status', '--target', 'h:1', '--model', MODEL, '--timeout_s', '-1'], "argument --timeout_s: '-1' is not"),
])
def test_cli_bad_flags_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2 and message in capsys.readouterr().err


def test_cli_unreadable_files_exit_2_naming_flag_and_file(fake, spec, tmp_path, capsys):
    common = ['--target', _target(fake), '--model', MODEL]
    rows = _rows(spec, 2)
    good = _write_csv(tmp_path / 'rows.csv', rows)
    rows[1][next(n for n, c in examples_lib.ExampleEncoder(spec).columns.items() if c.dtype == 'float32')] = 'x'
    bad = _write_csv(tmp_path / 'bad.csv', rows)
    missing = str(tmp_path / 'missing.tfrecord')
    spec_file = tmp_path / 'spec.yaml'
    spec_file.write_text('name: x\n')
    cases = [(['predict', *common, '--examples', missing], f'argument --examples: {missing}: no such file'),
             (['predict', *common, '--examples', bad], f'argument --examples: {bad}: line 3: column'),
             (['predict', *common, '--examples', good, '--feature_spec', str(spec_file)],
              f'argument --feature_spec: {spec_file}'),
             (['rank', *common, '--context', good, '--candidates', good],
              f'argument --context: {good} holds more than one example'),
             (['rank', *common, '--context', missing, '--candidates', good], f'argument --context: {missing}')]
    for argv, message in cases:
        with pytest.raises(SystemExit) as raised:
            main(argv)
        assert raised.value.code == 2 and message in capsys.readouterr().err, argv
    assert not fake.requests

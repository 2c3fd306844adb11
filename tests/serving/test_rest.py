"""REST round trips (TF Serving's JSON formats) against an in-process server."""

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from serving import model_manager, signatures

XS = [-1.0, 0.0, 2.0]


@pytest.fixture
def server(tiny, tmp_path, start_server):
    config = model_manager.config_from_flags('tiny', tiny.base(str(tmp_path), versions=(1, 2)))
    config.model_config_list.config[0].version_labels['stable'] = 2
    return start_server(config, rest_api_port=-1, max_batch_rows=10)


def _call(url: str, document=None, raw: bytes = None):
    """(HTTP status, JSON body) of a GET (no document) or POST."""
    data = raw if raw is not None else (None if document is None else json.dumps(document).encode())
    request = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _b64(data: bytes) -> dict:
    return {'b64': base64.b64encode(data).decode()}


def test_predict_row_format(server, tiny):
    instances = [_b64(e) for e in tiny.serialized(XS)]
    status, body = _call(f'{server.rest_url}/v1/models/tiny:predict', {'instances': instances})
    assert status == 200
    np.testing.assert_allclose(body['predictions'], tiny.probability(2, XS), rtol=1e-6)
    assert body['predictions'] == [float(v) for v in map(str, map(np.float32, body['predictions']))], 'not shortest'

    objects = [{signatures.EXAMPLES: instance} for instance in instances]
    assert _call(f'{server.rest_url}/v1/models/tiny/labels/stable:predict', {'instances': objects}) == (200, body)


def test_predict_columnar_format_with_two_inputs(server, tiny):
    document = {'signature_name': signatures.RANK, 'inputs': {
        signatures.CONTEXT: _b64(tiny.example(u=0.5).SerializeToString()),
        signatures.CANDIDATES: [_b64(e) for e in tiny.serialized(XS)]}}
    status, body = _call(f'{server.rest_url}/v1/models/tiny/versions/2:predict', document)
    assert status == 200
    np.testing.assert_allclose(body['outputs'], tiny.probability(2, XS, u=0.5), rtol=1e-6)


def test_predict_row_format_with_two_outputs_gives_objects(server, tiny):
    document = {'signature_name': signatures.CLASSIFY, 'instances': [_b64(e) for e in tiny.serialized(XS[:2])]}
    status, body = _call(f'{server.rest_url}/v1/models/tiny:predict', document)
    assert status == 200
    p = tiny.probability(2, XS[:2])
    outputs = [signatures.CLASSIFY_CLASSES, signatures.CLASSIFY_SCORES]
    assert [sorted(row) for row in body['predictions']] == [outputs] * 2
    assert [row[signatures.CLASSIFY_CLASSES] for row in body['predictions']] == [['0', '1']] * 2
    np.testing.assert_allclose([row[signatures.CLASSIFY_SCORES] for row in body['predictions']],
                               np.stack([1 - p, p], axis=1), atol=1e-6)


def test_classify_and_regress_with_json_examples_and_context(server, tiny):
    document = {'signature_name': signatures.CLASSIFY, 'context': {'x': 5.0},
                'examples': [{'x': -1.0}, {}, {'x': [0.5]}]}
    status, body = _call(f'{server.rest_url}/v1/models/tiny:classify', document)
    assert status == 200
    p = tiny.probability(2, [-1.0, 5.0, 0.5])
    assert [[label for label, _ in classes] for classes in body['results']] == [['0', '1']] * 3
    np.testing.assert_allclose([[score for _, score in classes] for classes in body['results']],
                               np.stack([1 - p, p], axis=1), atol=1e-6)
    document['signature_name'] = signatures.REGRESS
    status, body = _call(f'{server.rest_url}/v1/models/tiny:regress', document)
    assert status == 200
    np.testing.assert_allclose(body['results'], p, rtol=1e-6)


def test_status_and_metadata(server, tiny):
    assert _call(f'{server.rest_url}/v1/models/tiny') == (200, {'model_version_status': [
        {'version': '2', 'state': 'AVAILABLE', 'status': {'error_code': 'OK', 'error_message': ''}}]})
    assert _call(f'{server.rest_url}/v1/models/tiny/versions/2')[0] == 200
    status, body = _call(f'{server.rest_url}/v1/models/tiny/metadata')
    assert status == 200
    assert body['model_spec'] == {'name': 'tiny', 'signature_name': '', 'version': '2'}
    signature_defs = body['metadata']['signature_def']['signature_def']
    assert set(signature_defs) == set(signatures.signature_defs(tiny.export(2)))
    regression = signature_defs[signatures.REGRESS]
    assert regression['method_name'] == signatures.REGRESS_METHOD
    assert regression['inputs'][signatures.REGRESS_INPUTS]['dtype'] == 'DT_STRING'


@pytest.mark.parametrize('path, document, status, message', [
    ('/v1/models/nope:predict', {'instances': ['a']}, 404, 'Servable not found for request: Latest(nope)'),
    ('/v1/models/tiny/versions/1:predict', {'instances': ['a']}, 404,
     'Servable not found for request: Specific(tiny, 1)'),
    ('/v1/models/tiny/labels/nope:predict', {'instances': ['a']}, 400, 'Unrecognized servable version label: nope'),
    ('/v1/models/tiny:predict', {'instances': [1.5]}, 400, 'is not of expected type: string'),
    ('/v1/models/tiny:predict', {'instances': ['a'] * 11}, 429, 'rows exceed the limit of 10 rows per request'),
    ('/v1/models/tiny:predict', {'instances': ['a']}, 400, 'Could not parse example input'),
    ('/v1/models/tiny:predict', {'signature_name': 'nope', 'inputs': ['a']}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ('/v1/models/tiny:predict', {'instances': [], 'inputs': []}, 400, "expecting only one of 'inputs' or 'instances'"),
    ('/v1/models/tiny:predict', {'instances': [[_b64(b'a')], _b64(b'b')]}, 400, 'Expecting shape [1] but got: []'),
    ('/v1/models/tiny:classify', {'examples': [{'x': 1.0}]}, 400, 'Expected classification signature method_name'),
    ('/v1/models/tiny:regress', {'signature_name': signatures.REGRESS, 'examples': [{'x': [1.0, 'a']}]}, 400,
     'Unexpected element type in feature: x expecting type: float'),
    ('/v1/models/tiny:regress', {'signature_name': signatures.REGRESS, 'examples': []}, 400,
     "'examples' value is an empty array"),
    ('/v1/models/tiny:explode', {}, 400, 'Malformed request: POST /v1/models/tiny:explode'),
    ('/v1/models/nope', None, 404, 'Could not find any versions of model nope'),
])
def test_errors_have_tf_serving_s_http_status(server, path, document, status, message):
    got_status, body = _call(server.rest_url + path, document)
    assert got_status == status
    assert message in body['error']


def test_malformed_json_is_bad_request(server):
    status, body = _call(f'{server.rest_url}/v1/models/tiny:predict', raw=b'{"instances": [')
    assert status == 400 and body['error'].startswith('JSON Parse error')

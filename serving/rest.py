"""TF Serving's REST API (``--rest_api_port``) on the standard library's ``ThreadingHTTPServer``.

Endpoints, as TF Serving's (``<model>`` may be followed by ``/versions/<n>`` or ``/labels/<label>``):

* ``POST /v1/models/<model>:predict`` with ``{"signature_name": ..., "instances": [...]}`` (row format, answered
  with ``{"predictions": [...]}``) or ``{"inputs": ...}`` (columnar, answered with ``{"outputs": ...}``); binary
  strings are ``{"b64": "..."}``; string outputs whose name ends in ``_bytes`` are returned the same way.
* ``POST /v1/models/<model>:classify`` / ``:regress`` with ``{"examples": [{feature: value or list}, ...],
  "context": {...}}``, answered with ``{"results": ...}``.
* ``GET /v1/models/<model>`` (``GetModelStatus`` as JSON) and ``GET /v1/models/<model>/metadata``.

Requests become the same protos the gRPC API takes and run through the same code path
(:class:`serving.inference.Inference`), so both APIs check and answer alike. Errors are ``{"error": "..."}`` with
TF Serving's HTTP code for the status (400 for INVALID_ARGUMENT and FAILED_PRECONDITION, 404 NOT_FOUND, 429
RESOURCE_EXHAUSTED, 500 INTERNAL, ...). Differences: a string output that is not valid UTF-8 is returned as
``{"b64": ...}`` (TF Serving writes invalid JSON), chunked request bodies are refused (send Content-Length), and a
body over the size limit is RESOURCE_EXHAUSTED.
"""

import base64
import binascii
import http.server
import json
import logging
import re
import threading
import time
import urllib.parse
from typing import Any, Dict, Optional, Tuple

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, input_pb2, model_pb2, predict_pb2,
                                     regression_pb2)

from serving import errors
from serving import metadata
from serving import signatures

log = logging.getLogger(__name__)

_MODEL = r'/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?'
_PREDICTION_PATH = re.compile(_MODEL + r':(classify|regress|predict)', re.IGNORECASE)
_STATUS_PATH = re.compile(_MODEL + r'(?:/(metadata))?', re.IGNORECASE)
_API_PATH = re.compile(r'/v1/.*', re.IGNORECASE)

# TF Serving's mapping of status codes to HTTP (http_server.cc).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}
_BYTES_SUFFIX = '_bytes'
_B64 = 'b64'
_INT_RANGES = {dtype: (dtype.min, dtype.max) for dtype in (tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8,
                                                           tf.uint16, tf.uint32, tf.uint64)}
_EXACT_INTEGER = {tf.float16: 2 ** 11 - 1, tf.float32: 2 ** 24 - 1, tf.float64: 2 ** 53 - 1}


class RestApi:
    """Answers one REST request: (method, path, body) → (HTTP status, JSON document).

    Args:
        manager: resolves models (:class:`serving.model_manager.ModelManager`).
        inference: runs requests (:class:`serving.inference.Inference`).
    """

    def __init__(self, manager, inference):
        self._manager = manager
        self._inference = inference

    def handle(self, method: str, path: str, body: bytes) -> Tuple[int, Dict[str, Any]]:
        """The HTTP status and JSON document answering a request; errors are logged on one line."""
        path = path.split('?', 1)[0]
        try:
            return 200, self._dispatch(method, path, body)
        except RecursionError:
            error = errors.invalid_argument('JSON Parse error: the document is nested too deeply')
        except Exception as e:  # pylint: disable=broad-except  (every failure is an error response)
            error = errors.from_exception(e)
        log.warning('REST %s %s: %s', method, path, error.one_line())
        return HTTP_STATUS.get(error.code, 500), {'error': error.message}

    def _dispatch(self, method: str, path: str, body: bytes) -> Dict[str, Any]:
        match = _PREDICTION_PATH.fullmatch(path) if method == 'POST' else _STATUS_PATH.fullmatch(path)
        if method not in ('GET', 'POST') or match is None:
            raise errors.invalid_argument(f'Malformed request: {method} {path}')
        model_spec = model_pb2.ModelSpec(name=urllib.parse.unquote(match.group(1)))
        if match.group(2):
            if int(match.group(2)) >= 2 ** 63:
                raise errors.invalid_argument(f'Failed to convert version: {match.group(2)} to numeric.')
            model_spec.version.value = int(match.group(2))
        elif match.group(3):
            model_spec.version_label = urllib.parse.unquote(match.group(3))
        action = (match.group(4) or 'status').lower()
        if action == 'status':
            return json_format.MessageToDict(self._manager.status(model_spec), including_default_value_fields=True)
        if action == 'metadata':
            return self._metadata(model_spec)
        document = _parse(body)
        signature_name = document.get('signature_name', '')
        if not isinstance(signature_name, str):
            raise errors.invalid_argument(f'JSON Value: {_short(document)} not formatted correctly. '
                                          "'signature_name' key must be a string value.")
        model_spec.signature_name = signature_name
        if action == 'predict':
            return self._predict(model_spec, document)
        return self._classify_or_regress(model_spec, document, action)

    def _metadata(self, model_spec: model_pb2.ModelSpec) -> Dict[str, Any]:
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_spec,
                                                                 metadata_field=[metadata.SIGNATURE_DEF])
        response = metadata.get_model_metadata(self._manager, request)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[metadata.SIGNATURE_DEF].Unpack(signature_def_map)
        options = {'preserving_proto_field_name': True, 'including_default_value_fields': True}
        return {'model_spec': json_format.MessageToDict(response.model_spec, **options),
                'metadata': {metadata.SIGNATURE_DEF: json_format.MessageToDict(signature_def_map, **options)}}

    def _predict(self, model_spec: model_pb2.ModelSpec, document: Dict[str, Any]) -> Dict[str, Any]:
        with self._manager.acquire(model_spec) as version:
            name = model_spec.signature_name or signatures.PREDICT
            signature_def = version.signature_defs.get(name)
            if signature_def is None:
                raise errors.invalid_argument(f'Serving signature name: "{name}" not found in signature def')
            dtypes = {key: tf.as_dtype(info.dtype) for key, info in signature_def.inputs.items()}
            if not dtypes:
                raise errors.invalid_argument(f'Failed to get input map for signature: {name}')
            if 'instances' in document and 'inputs' in document:
                raise errors.invalid_argument(f"JSON Value: {_short(document)} Not formatted correctly expecting only "
                                              "one of 'inputs' or 'instances' keys to exist ")
            if 'instances' in document:
                arrays, row_format = _rows_to_arrays(document['instances'], dtypes), True
            elif 'inputs' in document:
                arrays, row_format = _columns_to_arrays(document['inputs'], dtypes), False
            else:
                raise errors.invalid_argument("Missing 'inputs' or 'instances' key")
            request = predict_pb2.PredictRequest(model_spec=model_spec)
            for key, array in arrays.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=dtypes[key]))
            response = self._inference.predict(version, request)
        outputs = {key: tf.make_ndarray(proto) for key, proto in sorted(response.outputs.items())}
        return _rows_json(outputs) if row_format else _columns_json(outputs)

    def _classify_or_regress(self, model_spec: model_pb2.ModelSpec, document: Dict[str, Any],
                             action: str) -> Dict[str, Any]:
        model_input = _json_input(document, action)
        with self._manager.acquire(model_spec) as version:
            if action == 'classify':
                result = self._inference.classify(version, classification_pb2.ClassificationRequest(
                    model_spec=model_spec, input=model_input)).result
                return {'results': [[[item.label, _float32(item.score)] for item in classifications.classes]
                                    for classifications in result.classifications]}
            result = self._inference.regress(version, regression_pb2.RegressionRequest(
                model_spec=model_spec, input=model_input)).result
            return {'results': [_float32(regression.value) for regression in result.regressions]}


class RestServer:
    """Serves a :class:`RestApi` over HTTP on a port (0 = a free port) on threads.

    Args:
        api: the request handler.
        host: the address to bind.
        port: the port to bind; the bound one is :attr:`port`.
        max_body_bytes: the largest accepted request body.
    """

    def __init__(self, api: RestApi, host: str, port: int, max_body_bytes: int):
        handler = type('Handler', (_Handler,), {'api': api, 'max_body_bytes': max_body_bytes, 'tracker': self})
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='rest-server', daemon=True)
        self._active = 0
        self._idle = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_seconds: float) -> None:
        """Stops accepting requests and waits up to ``grace_seconds`` for the running ones."""
        self._server.shutdown()
        deadline = time.monotonic() + grace_seconds
        with self._idle:
            while self._active and time.monotonic() < deadline:
                self._idle.wait(deadline - time.monotonic())
        self._server.server_close()

    def request_started(self) -> None:
        with self._idle:
            self._active += 1

    def request_ended(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive) handler; the class attributes are set per server by :class:`RestServer`."""
    protocol_version = 'HTTP/1.1'
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    api: RestApi
    max_body_bytes: int
    tracker: RestServer

    def do_GET(self):  # pylint: disable=invalid-name  (http.server's naming)
        self._serve('GET')

    def do_POST(self):  # pylint: disable=invalid-name
        self._serve('POST')

    def _serve(self, method: str) -> None:
        if not _API_PATH.fullmatch(self.path.split('?', 1)[0]):
            self._reply(404, {'error': f'Not found: {self.path}'})
            return
        self.tracker.request_started()
        try:
            body, refusal = self._read_body()
            if refusal is not None:
                self.close_connection = True
                log.warning('REST %s %s: %s', method, self.path, refusal.one_line())
                self._reply(HTTP_STATUS[refusal.code], {'error': refusal.message})
            else:
                self._reply(*self.api.handle(method, self.path, body))
        finally:
            self.tracker.request_ended()

    def _read_body(self) -> Tuple[bytes, Optional[errors.ServingError]]:
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            return b'', errors.invalid_argument('chunked request bodies are not supported; send Content-Length')
        try:
            length = int(self.headers.get('Content-Length', 0))
        except ValueError:
            return b'', errors.invalid_argument(f'bad Content-Length: {self.headers.get("Content-Length")}')
        if length > self.max_body_bytes:
            return b'', errors.resource_exhausted(
                f'request body of {length} bytes exceeds the limit of {self.max_body_bytes} bytes')
        return self.rfile.read(length) if length > 0 else b'', None

    def _reply(self, status: int, document: Dict[str, Any]) -> None:
        data = json.dumps(document).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin  (errors are logged by RestApi)
        del format, args


def _parse(body: bytes) -> Dict[str, Any]:
    if not body:
        raise errors.invalid_argument('JSON Parse error: The document is empty')
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.invalid_argument(f'JSON Parse error: {e}') from e
    if not isinstance(document, dict):
        raise errors.invalid_argument(f'JSON Value: {_short(document)} Is not object')
    return document


def _rows_to_arrays(instances: Any, dtypes: Dict[str, tf.DType]) -> Dict[str, np.ndarray]:
    """Row format: one element per row, a value (single input) or an object with every input name."""
    if not isinstance(instances, list):
        raise errors.invalid_argument("Excepting 'instances' to be an list/array")
    if not instances:
        raise errors.invalid_argument("No values in 'instances' array")
    objects = _is_object(instances[0])
    if not objects and len(dtypes) > 1:
        raise errors.invalid_argument('instances is a plain list, but expecting list of objects as multiple input '
                                      'tensors required as per tensorinfo_map')
    rows = {key: [] for key in dtypes}
    for i, instance in enumerate(instances):
        if objects != _is_object(instance):
            raise errors.invalid_argument(f'Expecting {"object" if objects else "value/list"} but got '
                                          f'{"object" if _is_object(instance) else "list"} at item {i} of input list')
        items = instance.items() if objects else [(next(iter(dtypes)), instance)]
        if objects and set(instance) != set(dtypes):
            raise errors.invalid_argument(f"Failed to process element: {i} of 'instances' list. JSON object: "
                                          f"{_short(instance)} keys must be equal to: {','.join(sorted(dtypes))}")
        for key, value in items:
            array = _json_to_array(value, dtypes[key])
            if rows[key] and array.shape != rows[key][0].shape:
                raise errors.invalid_argument(f"Failed to process element: {i} key: {key} of 'instances' list. "
                                              f'Error: Expecting shape {list(rows[key][0].shape)} but got: '
                                              f'{list(array.shape)}')
            rows[key].append(array)
    return {key: np.stack(arrays) for key, arrays in rows.items()}


def _columns_to_arrays(inputs: Any, dtypes: Dict[str, tf.DType]) -> Dict[str, np.ndarray]:
    """Columnar format: the whole tensor of a single input, or an object holding each input's tensor."""
    if not _is_object(inputs):
        if len(dtypes) > 1:
            raise errors.invalid_argument('inputs is a plain value/list, but expecting an object as multiple input '
                                          'tensors required as per tensorinfo_map')
        key = next(iter(dtypes))
        return {key: _json_to_array(inputs, dtypes[key])}
    arrays = {}
    for key, dtype in dtypes.items():
        if key not in inputs:
            raise errors.invalid_argument(f"Missing named input: {key} in 'inputs' object.")
        arrays[key] = _json_to_array(inputs[key], dtype)
    return arrays


def _json_to_array(value: Any, dtype: tf.DType) -> np.ndarray:
    """A dense JSON value (scalar or nested lists) of ``dtype`` as an array; the shape follows the first elements."""
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat = []
    _flatten(value, shape, 0, dtype, flat)
    numpy_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    return np.array(flat, dtype=numpy_dtype).reshape(shape)


def _flatten(value: Any, shape, level: int, dtype: tf.DType, out: list) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise errors.invalid_argument(f'JSON Value: {_short(value)} found at incorrect level: {level + 1} in the '
                                          f'JSON DOM. Expected at level: {len(shape)}')
        out.append(_json_scalar(value, dtype))
        return
    if level >= len(shape):
        raise errors.invalid_argument(f'Encountered list at unexpected level: {level} expected < {len(shape)}')
    if len(value) != shape[level]:
        raise errors.invalid_argument(f'Encountered list at unexpected size: {len(value)} at level: {level} '
                                      f'expected size: {shape[level]}')
    for item in value:
        _flatten(item, shape, level + 1, dtype, out)


def _json_scalar(value: Any, dtype: tf.DType) -> Any:
    """One JSON leaf as a value of ``dtype``, with TF Serving's type rules (e.g. no float for an int64 input)."""
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode('utf-8')
        if _is_b64(value):
            return _b64_decode(value)
    elif dtype == tf.bool:
        if isinstance(value, bool):
            return value
    elif dtype in _EXACT_INTEGER:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not _is_lossless(value, dtype):
                raise errors.invalid_argument(f'Cannot convert JSON value: {_short(value)} to {dtype.name} without '
                                              'loss of precision.')
            return value
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
    else:
        raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED,
                                  f'Conversion of JSON Value: {_short(value)} to type: {dtype.name}')
    raise errors.invalid_argument(f'JSON Value: {_short(value)} Type: {_json_type(value)} is not of expected type: '
                                  f'{dtype.name}')


def _is_lossless(value, dtype: tf.DType) -> bool:
    """TF Serving's rule: integers up to the mantissa's range, finite decimals within the type's range."""
    if isinstance(value, int):
        return abs(value) <= _EXACT_INTEGER[dtype]
    return not np.isfinite(value) or abs(value) <= dtype.max


def _json_input(document: Dict[str, Any], action: str) -> input_pb2.Input:
    """The ``Input`` of a classify/regress document: ``examples`` and an optional ``context``."""
    model_input = input_pb2.Input()
    has_context = 'context' in document
    if has_context:
        _json_example(document['context'], model_input.example_list_with_context.context)
    examples = document.get('examples')
    if examples is None:
        raise errors.invalid_argument(f"JSON Value: {_short(document)} When method is {action}, key 'examples' is "
                                      'expected and was not found')
    if not isinstance(examples, list):
        raise errors.invalid_argument("Expecting 'examples' value to be an list/array")
    if not examples:
        raise errors.invalid_argument("'examples' value is an empty array")
    for example in examples:
        target = (model_input.example_list_with_context.examples.add() if has_context
                  else model_input.example_list.examples.add())
        _json_example(example, target)
    return model_input


def _json_example(value: Any, example: example_pb2.Example) -> None:
    """A JSON object (feature name → value or list of values) as a tf.Example, typed as TF Serving types it."""
    if not isinstance(value, dict):
        raise errors.invalid_argument(f'Example must be JSON object but got JSON {_json_type(value)}')
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    if isinstance(value, bool):
        kind, item = 'int64_list', int(value)
    elif isinstance(value, str):
        kind, item = 'bytes_list', value.encode('utf-8')
    elif _is_b64(value):
        kind, item = 'bytes_list', _b64_decode(value)
    elif isinstance(value, float):
        if not _is_lossless(value, tf.float32):
            raise errors.invalid_argument(f'Cannot convert JSON value: {_short(value)} to float without loss of '
                                          'precision.')
        kind, item = 'float_list', value
    elif isinstance(value, int):
        if not -2 ** 63 <= value < 2 ** 63:
            raise errors.invalid_argument(f'Feature: {name} has uint64 element. Only int64 is supported.')
        kind, item = 'int64_list', value
    else:
        raise errors.invalid_argument(f'Feature: {name} has element with unexpected JSON type: {_json_type(value)}')
    current = feature.WhichOneof('kind')
    if current not in (None, kind):
        raise errors.invalid_argument(f'Unexpected element type in feature: {name} expecting type: '
                                      f'{current.split("_")[0]}')
    getattr(feature, kind).value.append(item)


def _rows_json(outputs: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """``{"predictions": [...]}``: one element per row, a value (one output) or an object of every output."""
    batch = None
    for key, array in outputs.items():
        if array.ndim == 0:
            raise errors.invalid_argument(f'Tensor name: {key} has no shape information ')
        if batch is not None and array.shape[0] != batch:
            raise errors.invalid_argument(f'Tensor name: {key} has inconsistent batch size: {array.shape[0]} '
                                          f'expecting: {batch}')
        batch = array.shape[0]
    values = {key: _to_json(array, key) for key, array in outputs.items()}
    if len(values) == 1:
        return {'predictions': next(iter(values.values()))}
    return {'predictions': [{key: values[key][i] for key in values} for i in range(batch)]}


def _columns_json(outputs: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """``{"outputs": ...}``: the tensor of a single output, or an object of every output's tensor."""
    values = {key: _to_json(array, key) for key, array in outputs.items()}
    return {'outputs': next(iter(values.values())) if len(values) == 1 else values}


def _to_json(array: np.ndarray, name: str) -> Any:
    """An output array as nested lists; float32 in its shortest form, strings as text or ``{"b64": ...}``."""
    if array.dtype == np.float32 or array.dtype == np.float16:
        return array.astype(str).astype(np.float64).tolist()
    if array.dtype == object:
        as_bytes = name.endswith(_BYTES_SUFFIX)
        return _map_nested(array.tolist(), lambda value: _string_json(value, as_bytes))
    return array.tolist()


def _string_json(value: bytes, as_bytes: bool) -> Any:
    if not as_bytes:
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            pass
    return {_B64: base64.b64encode(value).decode('ascii')}


def _map_nested(value: Any, function) -> Any:
    if isinstance(value, list):
        return [_map_nested(item, function) for item in value]
    return function(value)


def _float32(value: float) -> float:
    """A float32 value as the shortest decimal that reads back as the same float32 (TF Serving's JSON)."""
    return float(str(np.float32(value)))


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_B64), str)


def _b64_decode(value: Dict[str, str]) -> bytes:
    try:
        return base64.b64decode(value[_B64], validate=True)
    except (binascii.Error, ValueError) as e:
        raise errors.invalid_argument('Unable to base64 decode') from e


def _json_type(value: Any) -> str:
    for kind, name in ((type(None), 'Null'), (bool, 'Bool'), (dict, 'Object'), (list, 'Array'), (str, 'String')):
        if isinstance(value, kind):
            return name
    return 'Number'


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + '...'

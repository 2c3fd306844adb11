"""gRPC client of a served model: TF Serving or this project's server (:mod:`serving.server`), unchanged.

    from feature_spec import spec as spec_lib
    from serving.client import ServingClient

    with ServingClient('localhost:8500', 'ranker', spec=spec_lib.load('feature_spec/specs/synthetic.yaml')) as client:
        result = client.predict([{'age_bucket': 3, 'hist_item_id': [5, 9], ...}, serialized_example])
        result.scores, result.version          # float32 [N] click probabilities, the version that served them
        result.heads                           # a multi-head model's other heads: {'cvr': [N], 'ctcvr': [N], …}
        client.rank(context, candidates).scores
        client.recommend(context, k=10, retrieval_model='two_tower')   # retrieve 100, rank them, keep the top 10

Examples are ``tf.train.Example`` protos, serialized bytes, or dicts of column name → value (encoded with the
client's feature spec, :class:`serving.examples.ExampleEncoder`). Every call returns a result object that carries
the served version (the response's ``model_spec``), so one client can be shared by threads. A call that finds the
server UNAVAILABLE is retried ``max_retries`` times with exponential backoff and jitter; any other failure raises
:class:`ServingError` with the gRPC code and the server's message. Signature and tensor names are those of
:mod:`serving.signatures`.

Command line (one JSON line per example for predict and rank, one JSON object for metadata and status)::

    python -m serving.client predict --target localhost:8500 --model ranker --examples data/tiny/csv/test/part-00000.csv
        [--feature_spec PATH] [--signature NAME] [--batch_size N]
    python -m serving.client rank --target ... --model ... --context FILE --candidates FILE [--feature_spec PATH]
    python -m serving.client recommend --target ... --model RANKER --retrieval_model RETRIEVER --context FILE
        [--k 10] [--candidates 100] [--feature_spec PATH]
    python -m serving.client metadata --target ... --model ...
    python -m serving.client status --target ... --model ...
    common flags: [--version N | --version_label LABEL] [--timeout_s S] [--max_retries N]

Exit status: 0 done, 1 the server failed the call (its code and message on stderr), 2 a bad flag or an unreadable
input file (the flag and the file named on stderr).
"""

import dataclasses
import os
import random
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, input_pb2,
                                     model_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from feature_spec import spec as spec_lib
from serving import examples as examples_lib
from serving import signatures

DEFAULT_SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'feature_spec', 'specs',
                            'synthetic.yaml')
SIGNATURE_DEF_FIELD = 'signature_def'   # GetModelMetadata's metadata field of the SignatureDefMap


class ServingError(Exception):
    """A call that failed: the server's gRPC status, or a response that does not fit the signature contract.

    Attributes:
        call: what was called (RPC, target, model, signature).
        code: the gRPC status code (``grpc.StatusCode``); None for a malformed response.
        details: the server's message.
        attempts: how many times the RPC was sent.
    """

    def __init__(self, call: str, code: Optional[grpc.StatusCode], details: str, attempts: int = 1):
        self.call, self.code, self.details, self.attempts = call, code, details, attempts
        status = f'{code.name}: ' if code is not None else ''
        tries = f' (after {attempts} attempts)' if attempts > 1 else ''
        super().__init__(f'{call}: {status}{details}{tries}')


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Scores of a Predict (``predict``, ``rank``) or Regress call.

    Attributes:
        scores: float32 ``[N]``, one per example (candidate), in request order: the primary head's probabilities.
        version: the model version that answered (the response's ``model_spec.version``; None if not given).
        signature_name: the signature that was called.
        heads: a multi-head model's other served heads by name (``cvr``, ``ctcvr``, …), float32 ``[N]`` each; empty
            for a single-head model and for Regress.
    """
    scores: np.ndarray
    version: Optional[int]
    signature_name: str
    heads: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Classification:
    """Result of a Classify call.

    Attributes:
        classes: ``[N, K]`` class labels (str) of each example.
        scores: float32 ``[N, K]``, the score of each class.
        version: the model version that answered (None if not given).
        signature_name: the signature that was called.
    """
    classes: np.ndarray
    scores: np.ndarray
    version: Optional[int]
    signature_name: str


@dataclasses.dataclass(frozen=True)
class Metadata:
    """GetModelMetadata's SignatureDefMap, unpacked: signature name → SignatureDef, and the version described."""
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef]
    version: Optional[int]

    @property
    def heads(self) -> List[str]:
        """The served heads beyond ``probabilities`` (the outputs of ``serving_default``; none for a single-head
        model)."""
        predict = self.signature_defs.get(signatures.PREDICT)
        return sorted(set(predict.outputs) - {signatures.PROBABILITIES}) if predict else []


@dataclasses.dataclass(frozen=True)
class Retrieval:
    """What a retrieval model's ``retrieve`` returned.

    Attributes:
        item_ids: ``[N, k]`` raw item ids (str) of each context, best first.
        scores: float32 ``[N, k]``, their retrieval scores.
        candidates: ``[N, k]`` serialized raw item examples (what a ranker's ``rank`` reads), or None when the
            model was exported without them.
        version: the model version that answered.
        signature_name: the signature that was called.
    """
    item_ids: np.ndarray
    scores: np.ndarray
    candidates: Optional[np.ndarray]
    version: Optional[int]
    signature_name: str


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One request retrieved then ranked (:meth:`ServingClient.recommend`): the top k by the ranker.

    Attributes:
        item_ids: the k raw item ids, best first by the ranker's score.
        scores: float32 ``[k]``, the ranker's probabilities (its primary head).
        retrieval_scores: float32 ``[k]``, the retrieval model's scores of the same items.
        heads: a multi-head ranker's other heads, ``{name: [k]}``.
        retrieval_version, ranking_version: the versions that answered.
    """
    item_ids: List[str]
    scores: np.ndarray
    retrieval_scores: np.ndarray
    heads: Dict[str, np.ndarray]
    retrieval_version: Optional[int]
    ranking_version: Optional[int]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version's state in GetModelStatus: ``state`` e.g. 'AVAILABLE', ``error_code`` e.g. 'OK'."""
    version: int
    state: str
    error_code: str
    error_message: str


class ServingClient:
    """Calls one model of a TF Serving (or :mod:`serving.server`) gRPC endpoint.

    Args:
        target: ``host:port`` of the gRPC endpoint.
        model_name: the served model's name.
        version: serve from this version (default: the server's choice, normally the latest).
        version_label: serve from the version with this label (e.g. 'stable'); not with ``version``.
        timeout_s: deadline of each RPC attempt, in seconds.
        max_retries: how many times an UNAVAILABLE call is sent again (0: never).
        initial_backoff_s: wait before the first retry; it doubles with each retry, up to ``max_backoff_s``, and
            each wait is drawn uniformly between half and all of it (jitter).
        channel_options: gRPC channel options, e.g. ``[('grpc.max_receive_message_length', -1)]``.
        spec: the feature spec, to send dict examples (their column types); not needed for protos or bytes.
        max_backoff_s: the longest wait between two attempts.

    Raises:
        ValueError: an argument out of range, naming it.
    """

    def __init__(self, target: str, model_name: str, version: Optional[int] = None,
                 version_label: Optional[str] = None, timeout_s: float = 10.0, max_retries: int = 3,
                 initial_backoff_s: float = 0.1, channel_options: Optional[Sequence[Tuple[str, Any]]] = None,
                 spec: Optional[spec_lib.FeatureSpec] = None, max_backoff_s: float = 5.0):
        if not target:
            raise ValueError('target: expected host:port, got an empty string')
        if not model_name:
            raise ValueError('model_name: expected the served model name, got an empty string')
        if version is not None and version_label is not None:
            raise ValueError(f'version and version_label: give one, not both (got {version!r} and {version_label!r})')
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise ValueError(f'version must be a non-negative integer, got {version!r}')
        for name, value in (('timeout_s', timeout_s), ('initial_backoff_s', initial_backoff_s),
                            ('max_backoff_s', max_backoff_s)):
            if not value >= 0 or (name == 'timeout_s' and value == 0):
                raise ValueError(f'{name} must be a {"positive" if name == "timeout_s" else "non-negative"} number '
                                 f'of seconds, got {value!r}')
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f'max_retries must be a non-negative integer, got {max_retries!r}')
        self.target, self.model_name = target, model_name
        self.version, self.version_label = version, version_label
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self._encoder = examples_lib.ExampleEncoder(spec) if spec is not None else None
        self._channel = grpc.insecure_channel(target, options=list(channel_options or ()))
        self._prediction_service = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_service = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def __enter__(self) -> 'ServingClient':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; later calls fail."""
        self._channel.close()

    def model_spec(self, signature_name: Optional[str] = None) -> model_pb2.ModelSpec:
        """The ModelSpec of this client's requests: name, version or label, and ``signature_name`` if given."""
        model_spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name or '')
        if self.version is not None:
            model_spec.version.value = self.version
        elif self.version_label is not None:
            model_spec.version_label = self.version_label
        return model_spec

    def predict(self, examples: Sequence[examples_lib.ExampleLike],
                signature_name: str = signatures.PREDICT) -> Prediction:
        """Click probabilities of full examples (Predict; input ``examples`` ``[N]``, output ``probabilities``)."""
        serialized = self._serialized(examples, 'examples')
        request = predict_pb2.PredictRequest(model_spec=self.model_spec(signature_name))
        request.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto(serialized, tf.string, [len(serialized)]))
        return self._prediction(request, len(serialized))

    def rank(self, context: examples_lib.ExampleLike, candidates: Sequence[examples_lib.ExampleLike],
             signature_name: str = signatures.RANK) -> Prediction:
        """Click probabilities of N candidates for one request (Predict on ``rank``).

        Args:
            context: one example of the user, behaviour and request columns (a full example also works: the model
                reads only its context columns; see :func:`serving.examples.split_for_rank`); sent as a scalar.
            candidates: N examples of the item columns, sent as a ``[N]`` tensor.
        """
        context_bytes = self._serialized([context], 'context')[0]
        serialized = self._serialized(candidates, 'candidates')
        request = predict_pb2.PredictRequest(model_spec=self.model_spec(signature_name))
        request.inputs[signatures.CONTEXT].CopyFrom(tf.make_tensor_proto(context_bytes, tf.string, []))
        request.inputs[signatures.CANDIDATES].CopyFrom(
            tf.make_tensor_proto(serialized, tf.string, [len(serialized)]))
        return self._prediction(request, len(serialized))

    def retrieve(self, contexts: Sequence[examples_lib.ExampleLike], k: int,
                 exclude: Optional[Sequence[Sequence[Any]]] = None, model_name: Optional[str] = None) -> Retrieval:
        """The k best items of each context (Predict on a retrieval model's ``retrieve``, or ``retrieve_excluding``
        with ``exclude``: per context, raw item ids to leave out). ``model_name`` asks another model of the same
        server (its latest version) instead of this client's."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f'k must be a positive integer, got {k!r}')
        serialized = self._serialized(contexts, 'contexts')
        name = signatures.RETRIEVE if exclude is None else signatures.RETRIEVE_EXCLUDING
        model_spec = (self.model_spec(name) if model_name is None else
                      model_pb2.ModelSpec(name=model_name, signature_name=name))
        request = predict_pb2.PredictRequest(model_spec=model_spec)
        request.inputs[signatures.CONTEXT].CopyFrom(tf.make_tensor_proto(serialized, tf.string, [len(serialized)]))
        request.inputs[signatures.K].CopyFrom(tf.make_tensor_proto(k, tf.int32, []))
        if exclude is not None:
            request.inputs[signatures.EXCLUDE].CopyFrom(tf.make_tensor_proto(_padded_ids(exclude, len(serialized))))
        response = self._call('Predict', self._prediction_service.Predict, request, name)
        missing = {signatures.ITEM_IDS, signatures.SCORES} - set(response.outputs)
        if missing:
            raise ServingError(self._describe('Predict', name), None, f'the response has no output(s) '
                               f'{sorted(missing)}: is {model_spec.name!r} a retrieval model?')
        ids = tf.make_ndarray(response.outputs[signatures.ITEM_IDS])
        self._check_count(ids.shape[0], len(serialized), 'Predict', name)
        candidates = (tf.make_ndarray(response.outputs[signatures.CANDIDATES])
                      if signatures.CANDIDATES in response.outputs else None)
        return Retrieval(np.vectorize(lambda b: b.decode('utf-8', 'replace'), otypes=[object])(ids).astype(str)
                         if ids.size else ids.astype(str),
                         tf.make_ndarray(response.outputs[signatures.SCORES]).astype(np.float32), candidates,
                         _version(response.model_spec), name)

    def recommend(self, context: examples_lib.ExampleLike, k: int, retrieval_model: str, candidates: int = 100,
                  exclude: Optional[Sequence[Any]] = None) -> Recommendation:
        """Retrieve, then rank: ``candidates`` items retrieved for ``context`` by ``retrieval_model`` (served by the
        same server, its latest version), scored by this client's model (a ranker) with its ``rank`` signature,
        and the best k by the ranker returned with both scores. ``exclude``: raw item ids not to recommend."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= candidates:
            raise ValueError(f'k must be an integer in [1, candidates={candidates}], got {k!r}')
        retrieved = self.retrieve([context], candidates, None if exclude is None else [list(exclude)],
                                  model_name=retrieval_model)
        if retrieved.candidates is None:
            raise ServingError(f'Predict to {self.target} model {retrieval_model!r}', None,
                               'the retrieval model returns no candidate examples (export it with the training '
                               'files: tfx_pipeline.retrieval_export)')
        ranked = self.rank(context, list(retrieved.candidates[0]))
        order = np.argsort(-ranked.scores, kind='stable')[:k]
        heads = {name: values[order] for name, values in ranked.heads.items()}
        return Recommendation([str(i) for i in retrieved.item_ids[0][order]], ranked.scores[order],
                              retrieved.scores[0][order], heads, retrieved.version, ranked.version)

    def classify(self, examples: Sequence[examples_lib.ExampleLike], context: examples_lib.ExampleLike = None,
                 signature_name: str = signatures.CLASSIFY) -> Classification:
        """Classes and their scores (Classify), for TF Serving's ``example_list`` or, with ``context`` (features
        shared by every example), ``example_list_with_context``."""
        model_input, count = self._input(examples, context)
        request = classification_pb2.ClassificationRequest(model_spec=self.model_spec(signature_name),
                                                           input=model_input)
        response = self._call('Classify', self._prediction_service.Classify, request, signature_name)
        rows = response.result.classifications
        self._check_count(len(rows), count, 'Classify', signature_name)
        classes = np.array([[c.label for c in row.classes] for row in rows], dtype=str)
        scores = np.array([[c.score for c in row.classes] for row in rows], dtype=np.float32)
        return Classification(classes, scores, _version(response.model_spec), signature_name)

    def regress(self, examples: Sequence[examples_lib.ExampleLike], context: examples_lib.ExampleLike = None,
                signature_name: str = signatures.REGRESS) -> Prediction:
        """One value per example (Regress), with ``context`` as in :meth:`classify`."""
        model_input, count = self._input(examples, context)
        request = regression_pb2.RegressionRequest(model_spec=self.model_spec(signature_name), input=model_input)
        response = self._call('Regress', self._prediction_service.Regress, request, signature_name)
        values = np.array([r.value for r in response.result.regressions], dtype=np.float32)
        self._check_count(values.size, count, 'Regress', signature_name)
        return Prediction(values, _version(response.model_spec), signature_name)

    def metadata(self) -> Metadata:
        """The served version's signatures (GetModelMetadata with ``signature_def``)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=self.model_spec(),
                                                                 metadata_field=[SIGNATURE_DEF_FIELD])
        response = self._call('GetModelMetadata', self._prediction_service.GetModelMetadata, request)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        if SIGNATURE_DEF_FIELD not in response.metadata or \
                not response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_def_map):
            raise ServingError(self._describe('GetModelMetadata'), None,
                               f'the response has no {SIGNATURE_DEF_FIELD!r} SignatureDefMap')
        return Metadata(dict(signature_def_map.signature_def), _version(response.model_spec))

    def status(self) -> List[VersionStatus]:
        """The state of each version of the model (GetModelStatus; only the client's version or label if set)."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self.model_spec())
        response = self._call('GetModelStatus', self._model_service.GetModelStatus, request)
        return [VersionStatus(version=s.version, state=get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                              error_code=error_codes_pb2.Code.Name(s.status.error_code),
                              error_message=s.status.error_message)
                for s in response.model_version_status]

    def _prediction(self, request: predict_pb2.PredictRequest, count: int) -> Prediction:
        signature_name = request.model_spec.signature_name
        response = self._call('Predict', self._prediction_service.Predict, request, signature_name)
        if signatures.PROBABILITIES not in response.outputs:
            raise ServingError(self._describe('Predict', signature_name), None,
                               f'the response has no output {signatures.PROBABILITIES!r} '
                               f'(outputs: {", ".join(sorted(response.outputs)) or "none"})')
        outputs = {name: tf.make_ndarray(tensor).astype(np.float32).reshape(-1)
                   for name, tensor in response.outputs.items()}
        for values in outputs.values():
            self._check_count(values.size, count, 'Predict', signature_name)
        scores = outputs.pop(signatures.PROBABILITIES)
        return Prediction(scores, _version(response.model_spec), signature_name, dict(sorted(outputs.items())))

    def _call(self, rpc: str, method: Callable, request, signature_name: Optional[str] = None):
        """Sends ``request``, again after a backoff while the server is UNAVAILABLE (at most max_retries times)."""
        attempt = 0
        while True:
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.max_retries:
                    raise ServingError(self._describe(rpc, signature_name), e.code(), e.details() or '',
                                       attempt + 1) from None
            backoff = min(self.max_backoff_s, self.initial_backoff_s * 2 ** attempt)
            time.sleep(random.uniform(backoff / 2, backoff))
            attempt += 1

    def _describe(self, rpc: str, signature_name: Optional[str] = None) -> str:
        signature = f' signature {signature_name!r}' if signature_name else ''
        return f'{rpc} to {self.target} model {self.model_name!r}{signature}'

    def _check_count(self, got: int, expected: int, rpc: str, signature_name: str) -> None:
        if got != expected:
            raise ServingError(self._describe(rpc, signature_name), None,
                               f'the response has {got} results for {expected} examples')

    def _input(self, examples: Sequence[examples_lib.ExampleLike],
               context: Optional[examples_lib.ExampleLike]) -> Tuple[input_pb2.Input, int]:
        """The Input of a Classify or Regress request, and its number of examples."""
        protos = [_parse(e, f'examples[{i}]') for i, e in enumerate(self._serialized(examples, 'examples'))]
        if context is None:
            return input_pb2.Input(example_list=input_pb2.ExampleList(examples=protos)), len(protos)
        context_proto = _parse(self._serialized([context], 'context')[0], 'context')
        return input_pb2.Input(example_list_with_context=input_pb2.ExampleListWithContext(
            examples=protos, context=context_proto)), len(protos)

    def _serialized(self, examples: Sequence[examples_lib.ExampleLike], argument: str) -> List[bytes]:
        if isinstance(examples, (bytes, str, Mapping, tf.train.Example)) or not isinstance(examples, Iterable):
            raise TypeError(f'{argument}: expected a sequence of examples, got one {type(examples).__name__}; '
                            'wrap a single example in a list')
        serialized = [self._serialize(example, f'{argument}[{i}]') for i, example in enumerate(examples)]
        if not serialized:
            raise ValueError(f'{argument}: no examples')
        return serialized

    def _serialize(self, example: examples_lib.ExampleLike, where: str) -> bytes:
        if isinstance(example, bytes):
            return example
        if isinstance(example, tf.train.Example):
            return example.SerializeToString()
        if isinstance(example, Mapping):
            if self._encoder is None:
                raise ValueError(f'{where}: a dict example needs the feature spec for its column types; create the '
                                 'client with spec=feature_spec.spec.load(...)')
            return self._encoder.encode(example, where).SerializeToString()
        raise TypeError(f'{where}: expected a tf.train.Example, serialized bytes or a dict, '
                        f'got {type(example).__name__}')


def _parse(serialized: bytes, where: str) -> tf.train.Example:
    try:
        return tf.train.Example.FromString(serialized)
    except Exception as e:  # pylint: disable=broad-except  # protobuf's DecodeError differs by backend
        raise ValueError(f'{where}: not a serialized tf.train.Example ({e})') from None


def _padded_ids(rows: Sequence[Sequence[Any]], count: int) -> np.ndarray:
    """``[count, E]`` raw ids of each row, padded with −1 (integers) or ``''`` (strings), ids no catalogue has."""
    if len(rows) != count:
        raise ValueError(f'exclude: {len(rows)} rows for {count} contexts')
    width = max([len(r) for r in rows] + [1])
    strings = any(isinstance(v, (str, bytes)) for r in rows for v in r)
    pad = '' if strings else -1
    return np.array([[*r, *([pad] * (width - len(r)))] for r in rows], dtype=object if strings else np.int64)


def _version(model_spec: model_pb2.ModelSpec) -> Optional[int]:
    return model_spec.version.value if model_spec.HasField('version') else None


# ---------------------------------------------------------------------------------------------------------------
# Command line.


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (:mod:`serving.client_cli`)."""
    from serving import client_cli  # pylint: disable=import-outside-toplevel
    return client_cli.main(argv)


if __name__ == '__main__':
    sys.exit(main())

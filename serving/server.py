"""A TF-Serving-API model server: TF Serving's gRPC services and REST API over TF Serving's model directories.

    python -m serving.server --port 8500 --rest_api_port 8501 --model_name din --model_base_path /abs/models/din
    python -m serving.server --port 8500 --model_config_file models.config

It serves any SavedModel that follows :mod:`serving.signatures` through the protos and stubs of
``tensorflow_serving.apis``, with TF Serving's flag names, field names, status codes and messages, so a client
written against it works unchanged with ``tensorflow_model_server``. It is meant for local development, tests and
small deployments. Services:

* ``tensorflow.serving.PredictionService``: Predict, Classify, Regress and GetModelMetadata (``signature_def``);
  MultiInference answers UNIMPLEMENTED.
* ``tensorflow.serving.ModelService``: GetModelStatus and HandleReloadConfigRequest (a new ``model_config_list``).
* REST on ``--rest_api_port`` (:mod:`serving.rest`).

A request names the model, optionally a ``version`` or a ``version_label``, and the signature (empty =
``serving_default``); the response's ``model_spec`` says which version and signature served it. Unknown models and
versions are NOT_FOUND; a request over ``--max_receive_message_length`` bytes or ``--max_batch_rows`` rows is
RESOURCE_EXHAUSTED. A bad request never takes the server down, and each failed request logs one line.

Once the models are loaded and the ports bound it prints one line, e.g.
``serving: gRPC on 0.0.0.0:8500, REST on 0.0.0.0:8501, models: din``; SIGTERM or SIGINT stops it (polling stops,
running requests get a grace period) with exit status 0. Bad flags or model config exit with status 2 and a message
naming the flag or file, before anything is served. In tests, :class:`ModelServer` runs it in-process.
"""

import argparse
import concurrent.futures
import dataclasses
import logging
import re
import signal
import sys
import threading
from typing import Callable, List, Optional, Tuple

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)
from tensorflow_serving.config import model_server_config_pb2

from serving import batching
from serving import errors
from serving import inference as inference_lib
from serving import metadata
from serving import model_manager
from serving import rest
from serving import tensors

log = logging.getLogger(__name__)

PROG = 'python -m serving.server'


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How the server listens and what it accepts (the CLI flags of the same names).

    Attributes:
        port: gRPC port; 0 picks a free one.
        rest_api_port: REST port; 0 turns REST off (as in TF Serving), -1 picks a free one.
        host: the address both servers bind.
        file_system_poll_wait_seconds: seconds between polls of the model base paths; 0 polls once at start.
        max_receive_message_length: largest gRPC request (and REST body) in bytes; also the most elements of one
            input tensor.
        max_batch_rows: most rows (examples) in one request.
        grpc_max_threads: threads serving gRPC requests.
        batching_options: server-side batching, or None for none.
        grace_seconds: how long :meth:`ModelServer.stop` lets running requests finish.
        tensorflow_intra_op_parallelism: threads one TensorFlow op may use (TF Serving's flag); 0: TensorFlow's
            default (all cores). Process-wide, so it must be set before TensorFlow runs its first op.
        tensorflow_inter_op_parallelism: threads running independent ops (TF Serving's flag); 0: the default.
    """
    port: int = 8500
    rest_api_port: int = 0
    host: str = '0.0.0.0'
    file_system_poll_wait_seconds: float = 1.0
    max_receive_message_length: int = 64 << 20
    max_batch_rows: int = 100_000
    grpc_max_threads: int = 16
    batching_options: Optional[batching.BatchingOptions] = None
    grace_seconds: float = 5.0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0


_LISTENING = re.compile(r'^serving: gRPC on [^,]+:(\d+),')


def listening_port(line: str) -> Optional[int]:
    """The gRPC port of the line the CLI prints once serving (:meth:`ModelServer.listening_line`); None for any
    other line (a process that starts the server reads its stdout with this)."""
    match = _LISTENING.match(line)
    return int(match.group(1)) if match else None


class ModelServer:
    """The model server, in-process: ``server = ModelServer(config, options).start()`` ... ``server.stop()``.

    Args:
        config: the models: :func:`serving.model_manager.config_from_flags` or
            :func:`serving.model_manager.read_config_file`.
        options: ports, limits and batching.

    Attributes:
        grpc_port: the bound gRPC port (after :meth:`start`).
        rest_port: the bound REST port, or 0 when REST is off.
        manager: the :class:`serving.model_manager.ModelManager`.
        batcher: the :class:`serving.batching.Batcher`, or None without batching.
    """

    def __init__(self, config: model_server_config_pb2.ModelServerConfig, options: ServerOptions = ServerOptions()):
        self.options = options
        self.batcher = batching.Batcher(options.batching_options) if options.batching_options is not None else None
        limits = tensors.Limits(max_rows=options.max_batch_rows, max_elements=options.max_receive_message_length)
        self.inference = inference_lib.Inference(limits, self.batcher)
        self.manager = model_manager.ModelManager(config, self.inference, options.file_system_poll_wait_seconds)
        self.grpc_port = 0
        self.rest_port = 0
        self._grpc_server: Optional[grpc.Server] = None
        self._rest_server: Optional[rest.RestServer] = None

    def start(self) -> 'ModelServer':
        """Loads the models, then binds and starts the gRPC (and REST) servers.

        Raises:
            OSError: a port cannot be bound (everything started is stopped again).
            ValueError: thread counts were given but TensorFlow has already started in this process.
        """
        _set_tensorflow_threads(self.options)
        self.manager.start()
        try:
            self._start_grpc()
            if self.options.rest_api_port:
                self._start_rest()
        except BaseException:
            self.stop(grace_seconds=0)
            raise
        return self

    def stop(self, grace_seconds: Optional[float] = None) -> None:
        """Stops accepting requests, lets running ones finish (up to the grace period), stops polling and batching."""
        grace = self.options.grace_seconds if grace_seconds is None else grace_seconds
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
        if self._rest_server is not None:
            self._rest_server.stop(grace)
        self.manager.stop()
        if self.batcher is not None:
            self.batcher.stop()

    def listening_line(self) -> str:  # read back by :func:`listening_port`
        """The line the CLI prints once serving: where it listens and which models it serves."""
        rest_text = f'REST on {self.options.host}:{self.rest_port}' if self.rest_port else 'REST off'
        return (f'serving: gRPC on {self.options.host}:{self.grpc_port}, {rest_text}, '
                f'models: {",".join(self.manager.model_names())}')

    def __enter__(self) -> 'ModelServer':
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _start_rest(self) -> None:
        port = max(self.options.rest_api_port, 0)
        try:
            self._rest_server = rest.RestServer(rest.RestApi(self.manager, self.inference), self.options.host, port,
                                                self.options.max_receive_message_length)
        except OSError as e:
            raise OSError(f'--rest_api_port: cannot bind REST to {self.options.host}:{port}: {e}') from e
        self._rest_server.start()
        self.rest_port = self._rest_server.port

    def _start_grpc(self) -> None:
        server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=self.options.grpc_max_threads,
                                                  thread_name_prefix='grpc'),
            options=[('grpc.max_receive_message_length', self.options.max_receive_message_length),
                     ('grpc.max_send_message_length', -1),
                     ('grpc.so_reuseport', 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(self.manager, self.inference), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self.manager), server)
        address = f'{self.options.host}:{self.options.port}'
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f'--port: cannot bind gRPC to {address}: {e}') from e
        if not port:
            raise OSError(f'--port: cannot bind gRPC to {address}')
        server.start()
        self._grpc_server, self.grpc_port = server, port


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, manager: model_manager.ModelManager, inference: inference_lib.Inference):
        self._manager = manager
        self._inference = inference

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        return _answer(context, 'Predict', request, lambda: self._on_version(request, self._inference.predict))

    def Classify(self, request: classification_pb2.ClassificationRequest,
                 context) -> classification_pb2.ClassificationResponse:
        return _answer(context, 'Classify', request, lambda: self._on_version(request, self._inference.classify))

    def Regress(self, request: regression_pb2.RegressionRequest, context) -> regression_pb2.RegressionResponse:
        return _answer(context, 'Regress', request, lambda: self._on_version(request, self._inference.regress))

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return _answer(context, 'GetModelMetadata', request,
                       lambda: metadata.get_model_metadata(self._manager, request))

    def MultiInference(self, request, context):
        return _answer(context, 'MultiInference', request, _unimplemented('MultiInference'))

    def _on_version(self, request, run):
        if not request.HasField('model_spec'):
            raise errors.invalid_argument('Missing ModelSpec')
        with self._manager.acquire(request.model_spec) as version:
            return run(version, request)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``."""

    def __init__(self, manager: model_manager.ModelManager):
        self._manager = manager

    def GetModelStatus(self, request, context):
        return _answer(context, 'GetModelStatus', request, lambda: self._status(request))

    def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,
                                  context) -> model_management_pb2.ReloadConfigResponse:
        return _answer(context, 'HandleReloadConfigRequest', request, lambda: self._reload(request))

    def _status(self, request):
        if not request.HasField('model_spec'):
            raise errors.invalid_argument('Missing ModelSpec')
        return self._manager.status(request.model_spec)

    def _reload(self, request: model_management_pb2.ReloadConfigRequest) -> model_management_pb2.ReloadConfigResponse:
        if request.config.WhichOneof('config') != 'model_config_list':
            raise errors.invalid_argument('ServerModelConfig type not supported by HandleReloadConfigRequest. Only '
                                          'ModelConfigList is currently supported')
        try:
            self._manager.reload(request.config)
        except model_manager.ConfigError as e:
            raise errors.invalid_argument(str(e)) from e
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


def _answer(context, api: str, request, work: Callable[[], object]):
    """Runs ``work``; a failure aborts the RPC with its status and logs one line."""
    try:
        return work()
    except Exception as e:  # pylint: disable=broad-except  (every failure becomes the RPC's status)
        error = errors.from_exception(e)
    model = request.model_spec.name if hasattr(request, 'model_spec') else ''
    log.warning('%s model=%r: %s', api, model, error.one_line())
    context.abort(error.code, error.message)
    return None


def _set_tensorflow_threads(options: ServerOptions) -> None:
    for flag, setter in (('tensorflow_intra_op_parallelism', tf.config.threading.set_intra_op_parallelism_threads),
                         ('tensorflow_inter_op_parallelism', tf.config.threading.set_inter_op_parallelism_threads)):
        threads = getattr(options, flag)
        if threads:
            try:
                setter(threads)
            except RuntimeError as e:
                raise ValueError(f'--{flag}: TensorFlow has already started in this process ({e})') from e


def _unimplemented(api: str) -> Callable[[], object]:
    def fail():
        raise errors.ServingError(grpc.StatusCode.UNIMPLEMENTED, f'{api} is not supported by this server')
    return fail


def main(argv: Optional[List[str]] = None) -> int:
    try:
        config, options = parse_flags(argv)
    except ValueError as e:  # ConfigError included
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        server = ModelServer(config, options).start()
    except ValueError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return 2
    except OSError as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        return 1
    print(server.listening_line(), flush=True)
    while not stop.wait(0.5):
        pass
    log.info('stopping (grace period %.1f s)', options.grace_seconds)
    server.stop()
    return 0


def parse_flags(argv: Optional[List[str]] = None) -> Tuple[model_server_config_pb2.ModelServerConfig, ServerOptions]:
    """The model config and server options of command-line flags.

    Raises:
        SystemExit: (status 2) for an unknown flag or a value of the wrong type, as argparse does.
        ValueError: a bad value or model config (:class:`serving.model_manager.ConfigError`), naming the flag or file.
    """
    return _from_args(_parser().parse_args(argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    models = parser.add_argument_group('models (TF Serving flags)')
    models.add_argument('--model_name', default='default', help='name of the model of --model_base_path')
    models.add_argument('--model_base_path', help='directory of the version directories of --model_name')
    models.add_argument('--model_config_file', help='ModelServerConfig text proto with a model_config_list '
                                                    '(instead of --model_name/--model_base_path)')
    models.add_argument('--file_system_poll_wait_seconds', type=float, default=1.0,
                        help='seconds between polls of the base paths for new versions; 0 polls once at start')
    listen = parser.add_argument_group('listening')
    listen.add_argument('--port', type=int, default=8500, help='gRPC port; 0 picks a free one')
    listen.add_argument('--rest_api_port', type=int, default=0, help='REST port; 0 turns REST off, -1 picks a free one')
    listen.add_argument('--grpc_max_threads', type=int, default=16, help='threads serving gRPC requests')
    listen.add_argument('--tensorflow_intra_op_parallelism', type=int, default=0,
                        help='threads of one TensorFlow op (0: all cores)')
    listen.add_argument('--tensorflow_inter_op_parallelism', type=int, default=0,
                        help='threads running independent TensorFlow ops (0: the default)')
    listen.add_argument('--max_receive_message_length', type=int, default=64 << 20,
                        help='largest request in bytes (gRPC message or REST body); larger is RESOURCE_EXHAUSTED')
    listen.add_argument('--max_batch_rows', type=int, default=100_000,
                        help='most rows (examples) in one request; more is RESOURCE_EXHAUSTED')
    batch = parser.add_argument_group('server-side batching')
    batch.add_argument('--enable_batching', type=_bool, nargs='?', const=True, default=False,
                       help='batch concurrent requests of the same model version and signature')
    batch.add_argument('--batching_parameters_file',
                       help='not supported: the installed tensorflow-serving-api has no BatchingParameters proto; '
                            'use the three flags below')
    defaults = batching.BatchingOptions()
    batch.add_argument('--max_batch_size', type=int, default=defaults.max_batch_size, help='most rows in one batch')
    batch.add_argument('--batch_timeout_micros', type=int, default=defaults.batch_timeout_micros,
                       help='longest wait of a queued request for more rows')
    batch.add_argument('--num_batch_threads', type=int, default=defaults.num_batch_threads,
                       help='threads running batches')
    return parser


def _from_args(args: argparse.Namespace):
    """The model config and server options of the parsed flags; ValueError/ConfigError name the bad flag."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f'--port must be in [0, 65535], got {args.port}')
    if not -1 <= args.rest_api_port <= 65535:
        raise ValueError(f'--rest_api_port must be in [-1, 65535], got {args.rest_api_port}')
    for flag in ('grpc_max_threads', 'max_receive_message_length', 'max_batch_rows'):
        if getattr(args, flag) < 1:
            raise ValueError(f'--{flag} must be >= 1, got {getattr(args, flag)}')
    for flag in ('tensorflow_intra_op_parallelism', 'tensorflow_inter_op_parallelism'):
        if getattr(args, flag) < 0:
            raise ValueError(f'--{flag} must be >= 0, got {getattr(args, flag)}')
    if args.file_system_poll_wait_seconds < 0:
        raise ValueError(f'--file_system_poll_wait_seconds must be >= 0, got {args.file_system_poll_wait_seconds}')
    if args.batching_parameters_file:
        raise ValueError('--batching_parameters_file is not supported: the installed tensorflow-serving-api has no '
                         'BatchingParameters proto; use --max_batch_size, --batch_timeout_micros, --num_batch_threads')
    if args.model_config_file and args.model_base_path:
        raise ValueError('--model_config_file and --model_base_path exclude each other')
    if args.model_config_file:
        config = model_manager.read_config_file(args.model_config_file)
    elif args.model_base_path:
        config = model_manager.config_from_flags(args.model_name, args.model_base_path)
    else:
        raise ValueError('one of --model_base_path or --model_config_file is required')
    batching_options = None
    if args.enable_batching:
        batching_options = batching.BatchingOptions(args.max_batch_size, args.batch_timeout_micros,
                                                    args.num_batch_threads).validate()
    return config, ServerOptions(
        port=args.port, rest_api_port=args.rest_api_port,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        max_receive_message_length=args.max_receive_message_length, max_batch_rows=args.max_batch_rows,
        grpc_max_threads=args.grpc_max_threads, batching_options=batching_options,
        tensorflow_intra_op_parallelism=args.tensorflow_intra_op_parallelism,
        tensorflow_inter_op_parallelism=args.tensorflow_inter_op_parallelism)


def _bool(text: str) -> bool:
    """TF Serving's boolean flag values: true/false (also 1/0)."""
    if text.lower() in ('true', '1'):
        return True
    if text.lower() in ('false', '0'):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


if __name__ == '__main__':
    sys.exit(main())

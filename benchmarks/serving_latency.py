"""gRPC serving latency of a pushed model through our TF-Serving-API server; prints one JSON line of figures.

    python benchmarks/serving_latency.py                                   # trains DIN briefly on `small`
    python benchmarks/serving_latency.py --model_base_path runs/demo/serving/din --seconds 5

For ``serving_default`` (N joined examples of one user) and ``rank`` (one context and N candidates), with N in
{1, 10, 100, 500} and 1, 4 and 16 concurrent clients: p50/p95/p99 latency and QPS over gRPC, next to the model's
latency called in-process on the same batch (the floor: parsing, Transform and the model, no RPC). The server
runs in its own process (``python -m serving.server``), as it would in production; the clients are threads of
this process sending prebuilt requests, so client-side request building is not counted. On a machine with few
cores the clients and the server share them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dataclasses  # pylint: disable=wrong-import-position

import grpc  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # pylint: disable=wrong-import-position

from serving import load, signatures  # pylint: disable=wrong-import-position
from serving.examples import join_for_rank, split_for_rank  # pylint: disable=wrong-import-position
from serving.server import listening_port  # pylint: disable=wrong-import-position
from tfx_pipeline import data, experiment, export, trainer  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position

CANDIDATES = (1, 10, 100, 500)
CLIENTS = (1, 4, 16)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='din', help='model to train when no --model_base_path is given')
    parser.add_argument('--model_base_path', help='a pushed model (TF Serving layout); default: train one')
    parser.add_argument('--preset', default='small', choices=sorted(data.PRESETS),
                        help='synthetic data set the requests (and a trained model) come from')
    parser.add_argument('--epochs', type=int, default=1, help='epochs of the model trained here')
    parser.add_argument('--seconds', type=float, default=3.0, help='measuring time per configuration')
    parser.add_argument('--workdir', help='keep generated and transformed data here (default: a temp dir)')
    parser.add_argument('--server_flag', action='append', default=[],
                        help='a flag for the server, e.g. --server_flag=--tensorflow_intra_op_parallelism=1')
    args = parser.parse_args(argv)

    workdir = args.workdir or tempfile.mkdtemp(prefix='serving_latency_')
    prepared = experiment.prepare(dataclasses.replace(data.PRESETS[args.preset], seed=0), workdir)
    examples = export.read_examples(prepared.raw['test'], max(CANDIDATES))
    base_path = args.model_base_path or _train_and_push(prepared, args, workdir, examples)
    version_dir = os.path.join(base_path, max(os.listdir(base_path), key=lambda v: int(v) if v.isdigit() else -1))

    context, _ = split_for_rank(examples[0], prepared.spec)
    candidates = [split_for_rank(e, prepared.spec)[1] for e in examples]
    joined = [join_for_rank(context, c) for c in candidates]
    inputs = {
        signatures.PREDICT: lambda n: {signatures.EXAMPLES: [e.SerializeToString() for e in joined[:n]]},
        signatures.RANK: lambda n: {signatures.CONTEXT: context.SerializeToString(),
                                    signatures.CANDIDATES: [c.SerializeToString() for c in candidates[:n]]},
    }
    floors = _in_process_floors(version_dir, inputs)

    server = subprocess.Popen([sys.executable, '-m', 'serving.server', '--port', '0', '--model_name', 'bench',
                               '--model_base_path', os.path.abspath(base_path),
                               '--file_system_poll_wait_seconds', '0', *args.server_flag],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    try:
        port = _wait_for_port(server)
        channel = grpc.insecure_channel(f'localhost:{port}', options=[('grpc.max_receive_message_length', 1 << 30)])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        results = []
        for signature, make_inputs in inputs.items():
            for n in CANDIDATES:
                request = _request(signature, make_inputs(n))
                for _ in range(3):
                    stub.Predict(request, timeout=60)
                for clients in CLIENTS:
                    figures = _measure(stub, request, clients, args.seconds)
                    results.append({'signature': signature, 'candidates': n, 'clients': clients, **figures,
                                    'in_process_ms': floors[signature, n]})
        channel.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    goal = {r['signature']: r['p99_ms'] for r in results if r['candidates'] == 100 and r['clients'] == 4}
    print(json.dumps({'model': args.model if not args.model_base_path else base_path, 'version_dir': version_dir,
                      'cpu_count': os.cpu_count(), 'seconds_per_configuration': args.seconds,
                      'server_flags': args.server_flag,
                      'p99_ms_100_candidates_4_clients': goal, 'results': results}))


def _train_and_push(prepared, args, workdir, examples) -> str:
    config = TrainingConfig(model=args.model, epochs=args.epochs, early_stopping_patience=0)
    model, _ = trainer.train(prepared.spec, prepared.tft_output, [prepared.transformed['train']],
                             [prepared.transformed['eval']], config)
    base_path = os.path.join(workdir, 'serving', args.model)
    export.export_serving_model(model, prepared.tft_output, prepared.spec, 'tfrecord', os.path.join(base_path, '1'),
                                warmup_examples=examples)
    return base_path


def _request(signature: str, inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'bench'
    request.model_spec.signature_name = signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype=tf.string))
    return request


def _in_process_floors(version_dir: str, inputs, repeats: int = 30) -> dict:
    """Median milliseconds of the loaded SavedModel's signature on each batch, called in this process."""
    loaded = tf.saved_model.load(version_dir)
    floors = {}
    for signature, make_inputs in inputs.items():
        function = loaded.signatures[signature]
        for n in CANDIDATES:
            tensors = {k: tf.constant(v) for k, v in make_inputs(n).items()}
            for _ in range(3):
                function(**tensors)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                function(**tensors)[signatures.PROBABILITIES].numpy()
                times.append(time.perf_counter() - start)
            floors[signature, n] = round(1000 * float(np.median(times)), 3)
    return floors


def _wait_for_port(server: subprocess.Popen) -> int:
    for line in server.stdout:
        port = listening_port(line)
        if port is not None:
            return port
    raise RuntimeError(f'the server exited (status {server.wait()}) before listening')


def _measure(stub, request, clients: int, seconds: float) -> dict:
    """Each of ``clients`` threads sends ``request`` back to back for ``seconds``; latency percentiles and QPS."""
    with load.RequestLoop(lambda: stub.Predict(request, timeout=60), clients) as loop:
        time.sleep(seconds)
    records = loop.records
    failed = [r.error for r in records if r.error]
    if failed:
        raise RuntimeError(f'{len(failed)} requests failed, e.g. {failed[0]}')
    return load.summary(records, seconds)


if __name__ == '__main__':
    main()

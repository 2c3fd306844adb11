"""``retrieve`` latency in process and over gRPC, and index build time, for indexes of 10k, 100k and 1M items: one
JSON line per size.

    python benchmarks/retrieval_latency.py                       # sizes 10000 100000 1000000
    python benchmarks/retrieval_latency.py --sizes 10000 --requests 100

A two-tower model is built on the ``tiny`` synthetic set's Transform (its weights as initialised: latency does not
depend on them). For each size n, the index is n random unit vectors with n raw ids (an index built elsewhere,
:class:`~tfx_pipeline.retrieval_export.RetrievalServingModel`'s ``index``); the request is one context example
(parse, Transform, query tower, the n scores, the top k). ``build_s``: the candidate tower over n items (what
indexing a catalogue of n items costs at export), in batches of 65,536. ``in_process``: the exported SavedModel
loaded with ``tf.saved_model.load`` and called directly; ``grpc``: the same SavedModel served by this project's
server, called by the client (one request at a time). Times are milliseconds; goal: top-100 of 1M items under
25 ms p99 in process.

With ``--scann`` (the optional extra, :mod:`tfx_pipeline.scann_index`), each size also gets a ``scann`` entry: the
searcher's build seconds, its ``retrieve`` latency in process (the SavedModel loaded with ScaNN's ops), and its
Recall@k against the exact top k over ``RECALL_CONTEXTS`` test contexts. Random unit vectors have no clusters: the
worst case for a partitioned index, so its recall here is a floor.

The last line (``recommend_latency``) is retrieve → rank over gRPC: the two-tower model exported with the ``tiny``
catalogue (its items' raw examples inside, as the Trainer exports it) and DIN (initial weights), hosted by one
server; ``ServingClient.recommend`` retrieves ``--candidates`` items and ranks them with DIN's ``rank``
signature (two requests). ``retrieve`` and ``rank`` alone are timed beside it. Retrieve's growth with the index
is in the rows above; the ranker's cost depends on the candidates, not on the index.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import tensorflow as tf  # noqa: E402  pylint: disable=wrong-import-position

from feature_spec import schema as schema_lib  # noqa: E402  pylint: disable=wrong-import-position
from serving import model_manager, signatures  # noqa: E402  pylint: disable=wrong-import-position
from serving.client import ServingClient  # noqa: E402  pylint: disable=wrong-import-position
from serving.examples import split_for_rank  # noqa: E402  pylint: disable=wrong-import-position
from serving.server import ModelServer, ServerOptions  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline import data, experiment, export, trainer  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline import retrieval_export  # noqa: E402  pylint: disable=wrong-import-position

BUILD_BATCH = 65_536
RECALL_CONTEXTS = 50


def _percentiles(seconds):
    values = np.asarray(seconds) * 1000
    return {'p50_ms': round(float(np.percentile(values, 50)), 3), 'p99_ms': round(float(np.percentile(values, 99)), 3)}


def _timed(call, requests):
    call()   # warm up (first trace)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return _percentiles(times)


def build_seconds(model, size):
    """Seconds the candidate tower takes over ``size`` items (ids and side features drawn from the catalogue's)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for begin in range(0, size, BUILD_BATCH):
        ids = tf.constant(rng.integers(1, model.num_items, min(BUILD_BATCH, size - begin)), tf.int64)
        model.candidate_embedding(model.catalogue_features(ids)).numpy()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[10_000, 100_000, 1_000_000])
    parser.add_argument('--k', type=int, default=100)
    parser.add_argument('--requests', type=int, default=300)
    parser.add_argument('--candidates', type=int, default=100, help='items retrieved for the ranker (recommend)')
    parser.add_argument('--ranker', default='din', help='the ranking model of the recommend line')
    parser.add_argument('--scann', action='store_true', help='also the optional ScaNN index (needs scann)')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench', 'tiny-0'))
    args = parser.parse_args(argv)
    prepared = experiment.prepare(data.PRESETS['tiny'], args.workdir)
    model = trainer.build_model(prepared.spec, prepared.tft_output, TrainingConfig(model='two_tower'))
    examples = export.read_examples(prepared.raw['test'], RECALL_CONTEXTS)
    example = examples[0]
    contexts = tf.constant([split_for_rank(e, prepared.spec)[0].SerializeToString() for e in examples])
    context = split_for_rank(example, prepared.spec)[0].SerializeToString()
    model(export.transform_in_process(prepared.tft_output, prepared.spec, schema_lib.TFRECORD, [example]),
          training=False)   # builds the model
    dim = model.hparams['embedding_dim']
    for size in args.sizes:
        rng = np.random.default_rng(size)
        embeddings = rng.normal(size=(size, dim)).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        tokens = [str(i) for i in range(1, size + 1)]
        row = {'benchmark': 'retrieve_latency', 'items': size, 'k': args.k, 'embedding_dim': dim,
               'build_s': round(build_seconds(model, size), 3)}
        with tempfile.TemporaryDirectory() as directory:
            serving = retrieval_export.RetrievalServingModel(model, prepared.tft_output, prepared.spec,
                                                             schema_lib.TFRECORD, index=(embeddings, tokens))
            functions = serving.signatures()
            serving.track_model_variables()
            export_dir = os.path.join(directory, 'two_tower', '1')
            start = time.perf_counter()
            tf.saved_model.save(serving, export_dir, signatures=functions)
            row['export_s'] = round(time.perf_counter() - start, 2)
            loaded = tf.saved_model.load(export_dir)
            retrieve = loaded.signatures[signatures.RETRIEVE]
            request = {'context': tf.constant([context]), 'k': tf.constant(args.k)}
            row['in_process'] = _timed(lambda: retrieve(**request), args.requests)
            config = model_manager.config_from_flags('two_tower', os.path.dirname(export_dir))
            with ModelServer(config, ServerOptions(port=0, rest_api_port=-1, host='localhost')) as server, \
                    ServingClient(f'localhost:{server.grpc_port}', 'two_tower', timeout_s=60) as client:
                row['grpc'] = _timed(lambda: client.retrieve([context], args.k), args.requests)
            if args.scann:
                row['scann'] = scann_latency(serving, retrieve, request, contexts, args, directory)
        print(json.dumps(row), flush=True)
    print(json.dumps(recommend_latency(prepared, model, args, example)), flush=True)


def scann_latency(serving, exact_retrieve, request, contexts, args, directory):
    """The ``scann`` entry of a size's line (module docstring)."""
    from tfx_pipeline import scann_index  # pylint: disable=import-outside-toplevel
    start = time.perf_counter()
    module = scann_index.ScannRetrievalModel(serving, max_k=args.k)
    entry = {'build_s': round(time.perf_counter() - start, 2), **module.settings}
    export_dir = os.path.join(directory, 'scann')
    tf.saved_model.save(module, export_dir, signatures={signatures.RETRIEVE: module.retrieve.get_concrete_function()})
    retrieve = tf.saved_model.load(export_dir).signatures[signatures.RETRIEVE]
    entry['in_process'] = _timed(lambda: retrieve(**request), args.requests)
    found = retrieve(context=contexts, k=tf.constant(args.k))[signatures.ITEM_IDS].numpy()
    exact = exact_retrieve(context=contexts, k=tf.constant(args.k))[signatures.ITEM_IDS].numpy()
    entry[f'recall_at_{args.k}'] = round(float(np.mean([len(set(a) & set(b)) / args.k
                                                         for a, b in zip(found, exact)])), 4)
    return entry


def recommend_latency(prepared, model, args, example):
    """The ``recommend_latency`` line (module docstring)."""
    ranker = trainer.build_model(prepared.spec, prepared.tft_output, TrainingConfig(model=args.ranker))
    context, candidate = split_for_rank(example, prepared.spec)
    row = {'benchmark': 'recommend_latency', 'retrieval_model': 'two_tower', 'ranker': args.ranker,
           'items': len(retrieval_export.indexed_tokens(model, prepared.tft_output)), 'candidates': args.candidates,
           'k': 10}
    with tempfile.TemporaryDirectory() as directory:
        retrieval_export.export_retrieval_model(model, prepared.tft_output, prepared.spec, schema_lib.TFRECORD,
                                                os.path.join(directory, 'two_tower', '1'),
                                                train_pattern=prepared.raw['train'])
        export.export_serving_model(ranker, prepared.tft_output, prepared.spec, schema_lib.TFRECORD,
                                    os.path.join(directory, args.ranker, '1'))
        config = model_manager.config_from_flags(args.ranker, os.path.join(directory, args.ranker))
        config.model_config_list.config.extend(model_manager.config_from_flags(
            'two_tower', os.path.join(directory, 'two_tower')).model_config_list.config)
        with ModelServer(config, ServerOptions(port=0, rest_api_port=-1, host='localhost')) as server, \
                ServingClient(f'localhost:{server.grpc_port}', args.ranker, timeout_s=60) as client:
            candidates = [candidate] * args.candidates
            row['retrieve'] = _timed(lambda: client.retrieve([context], args.candidates, model_name='two_tower'),
                                     args.requests)
            row['rank'] = _timed(lambda: client.rank(context, candidates), args.requests)
            row['recommend'] = _timed(lambda: client.recommend(context, 10, 'two_tower', args.candidates),
                                      args.requests)
    return row


if __name__ == '__main__':
    main()

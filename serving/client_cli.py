"""The command line of :mod:`serving.client` (``python -m serving.client …``; usage in its docstring): one JSON line
per example for predict and rank, per item for recommend, one JSON object for metadata and status."""

import argparse
import dataclasses
import itertools
import json
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
from google.protobuf import json_format

from feature_spec import spec as spec_lib
from serving import argtypes
from serving import examples as examples_lib
from serving import signatures
from serving.client import DEFAULT_SPEC, SIGNATURE_DEF_FIELD, Prediction, ServingClient, ServingError

class _UsageError(Exception):
    """A bad flag or an unreadable input file; the message names the flag."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command; the exit status of the module docstring of :mod:`serving.client`."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        client = ServingClient(args.target, args.model, version=args.version, version_label=args.version_label,
                               timeout_s=args.timeout_s, max_retries=args.max_retries)
    except ValueError as e:
        parser.error(str(e))
    try:
        with client:
            _COMMANDS[args.command](client, args)
    except _UsageError as e:
        parser.error(str(e))
    except ServingError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


def _predict(client: ServingClient, args: argparse.Namespace) -> None:
    spec = _load_spec(args.feature_spec)
    examples = _read('--examples', args.examples, spec, spec.serving_columns)
    index = 0
    method = signatures.METHOD_NAMES.get(args.signature, signatures.PREDICT_METHOD)
    while True:
        batch = list(itertools.islice(examples, args.batch_size))
        if not batch:
            return
        if method == signatures.CLASSIFY_METHOD:
            result = client.classify(batch, signature_name=args.signature)
            rows = [{'scores': dict(zip(classes, map(_score, scores)))}
                    for classes, scores in zip(result.classes.tolist(), result.scores)]
        else:
            call = client.regress if method == signatures.REGRESS_METHOD else client.predict
            result = call(batch, signature_name=args.signature)
            rows = _score_rows(result)
        for row in rows:
            print(json.dumps({'index': index, **row, 'version': result.version}))
            index += 1
        sys.stdout.flush()


def _one_context(args: argparse.Namespace, spec: spec_lib.FeatureSpec, command: str):
    """The context part of the one example of ``--context``; a usage error when the file holds none or several."""
    contexts = list(itertools.islice(_read('--context', args.context, spec, spec.context_columns), 2))
    if len(contexts) != 1:
        raise _UsageError(f'argument --context: {args.context} holds {"no" if not contexts else "more than one"} '
                          f'example; {command} takes the one example of the request')
    return examples_lib.split_for_rank(contexts[0], spec)[0]


def _rank(client: ServingClient, args: argparse.Namespace) -> None:
    spec = _load_spec(args.feature_spec)
    context = _one_context(args, spec, 'rank')
    candidates = [examples_lib.split_for_rank(e, spec)[1]
                  for e in _read('--candidates', args.candidates, spec, spec.candidate_columns)]
    if not candidates:
        raise _UsageError(f'argument --candidates: {args.candidates} holds no example')
    result = client.rank(context, candidates, signature_name=args.signature)
    for index, row in enumerate(_score_rows(result)):
        print(json.dumps({'index': index, **row, 'version': result.version}))


def _recommend(client: ServingClient, args: argparse.Namespace) -> None:
    spec = _load_spec(args.feature_spec)
    context = _one_context(args, spec, 'recommend')
    if args.k > args.candidates:
        raise _UsageError(f'argument --k: {args.k} is more than --candidates {args.candidates}')
    result = client.recommend(context, args.k, args.retrieval_model, args.candidates)
    for index, item in enumerate(result.item_ids):
        row = {'rank': index, 'item_id': item, 'score': _score(result.scores[index]),
               'retrieval_score': _score(result.retrieval_scores[index])}
        if result.heads:
            row['heads'] = {name: _score(values[index]) for name, values in result.heads.items()}
        print(json.dumps({**row, 'version': result.ranking_version, 'retrieval_version': result.retrieval_version}))


def _score_rows(result: Prediction) -> List[Dict[str, Any]]:
    """One JSON object per example: its ``score`` and, for a multi-head model, ``heads`` by name."""
    rows = [{'score': _score(score)} for score in result.scores]
    for name, values in result.heads.items():
        for row, value in zip(rows, values):
            row.setdefault('heads', {})[name] = _score(value)
    return rows


def _metadata(client: ServingClient, _: argparse.Namespace) -> None:
    metadata = client.metadata()
    signature_defs = {name: json_format.MessageToDict(signature_def, preserving_proto_field_name=True)
                      for name, signature_def in metadata.signature_defs.items()}
    print(json.dumps({'model': client.model_name, 'version': metadata.version, SIGNATURE_DEF_FIELD: signature_defs}))


def _status(client: ServingClient, _: argparse.Namespace) -> None:
    print(json.dumps({'model': client.model_name,
                      'model_version_status': [dataclasses.asdict(s) for s in client.status()]}))


_COMMANDS = {'predict': _predict, 'rank': _rank, 'recommend': _recommend, 'metadata': _metadata,
             'status': _status}


def _read(flag: str, path: str, spec: spec_lib.FeatureSpec, required: Sequence[str]) -> Iterator[bytes]:
    """The examples of ``path``; a reading error becomes a usage error naming ``flag``."""
    try:
        yield from examples_lib.read_examples(path, spec, required)
    except examples_lib.ExampleError as e:
        raise _UsageError(f'argument {flag}: {e}') from None


def _load_spec(path: str) -> spec_lib.FeatureSpec:
    try:
        return spec_lib.load(path)
    except spec_lib.SpecError as e:
        raise _UsageError(f'argument --feature_spec: {e}') from None


def _score(value) -> float:
    """A float32 as the shortest decimal that reads back to it (0.3082138, not 0.30821380019187927)."""
    return float(str(np.float32(value)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m serving.client',
                                     description='gRPC client of a served model: TF Serving or this project\'s server.')
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--target', required=True, help='host:port of the gRPC endpoint')
    common.add_argument('--model', required=True, help='the served model name')
    versions = common.add_mutually_exclusive_group()
    versions.add_argument('--version', type=argtypes.non_negative_int, help='model version (default: the latest)')
    versions.add_argument('--version_label', help='model version label, e.g. stable')
    common.add_argument('--timeout_s', type=argtypes.positive_float, default=10.0,
                        help='deadline of each RPC attempt')
    common.add_argument('--max_retries', type=argtypes.non_negative_int, default=3,
                        help='retries of an UNAVAILABLE call')
    spec = argparse.ArgumentParser(add_help=False)
    spec.add_argument('--feature_spec', default=DEFAULT_SPEC, help='feature spec YAML (default: %(default)s)')
    commands = parser.add_subparsers(dest='command', required=True)
    predict = commands.add_parser('predict', parents=[common, spec], help='score every example of a file')
    predict.add_argument('--examples', required=True, help='.tfrecord, .csv or .jsonl file (optionally .gz)')
    predict.add_argument('--signature', default=signatures.PREDICT,
                         help=f'signature (default: %(default)s); {signatures.CLASSIFY} and {signatures.REGRESS} '
                              'are called through the Classify and Regress APIs')
    predict.add_argument('--batch_size', type=argtypes.positive_int, default=256, help='examples per request')
    rank = commands.add_parser('rank', parents=[common, spec], help='score candidates for one request')
    rank.add_argument('--context', required=True, help='file of the one example of the user and the request')
    rank.add_argument('--candidates', required=True, help='file of the candidate examples')
    rank.add_argument('--signature', default=signatures.RANK, help='signature (default: %(default)s)')
    recommend = commands.add_parser('recommend', parents=[common, spec],
                                    help='retrieve candidates with a retrieval model, rank them with --model')
    recommend.add_argument('--retrieval_model', required=True, help='the served retrieval model name')
    recommend.add_argument('--context', required=True, help='file of the one example of the user and the request')
    recommend.add_argument('--k', type=argtypes.positive_int, default=10, help='items returned (default: %(default)s)')
    recommend.add_argument('--candidates', type=argtypes.positive_int, default=100,
                           help='items retrieved and ranked (default: %(default)s)')
    commands.add_parser('metadata', parents=[common], help="print the model's signatures")
    commands.add_parser('status', parents=[common], help="print the state of the model's versions")
    return parser

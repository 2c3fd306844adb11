"""Command line: import a public data set's file into the pipeline's data layout with a feature spec.

Formats: Criteo, libFM, Amazon (DIN/DIEN), the SASRec/BERT4Rec sequence files and MovieLens.

    python -m tfx_pipeline.importers criteo --input FILE --out DIR [--splits 0.8,0.1,0.1] [--min_frequency 10]
    python -m tfx_pipeline.importers libfm --input FILE --out DIR [--splits 0.7,0.2,0.1] [--min_frequency 1]
        [--split_by random|order] [--seed 0]
    python -m tfx_pipeline.importers amazon --input FILE --out DIR [--splits 0.8,0.1,0.1] [--min_frequency 1]
        [--max_length 100] [--split_by order|random] [--seed 0]
    python -m tfx_pipeline.importers sequence --input FILE --out DIR [--max_length 50] [--min_frequency 1]
    python -m tfx_pipeline.importers movielens --input ratings.dat [--movies movies.dat] --out DIR [--max_length 200]
        [--min_frequency 1] [--min_rating R]

sequence and movielens split leave-one-out per user (last item test, second-to-last eval), so they take no --splits.

Prints one JSON line: rows and CTR per split, the feature spec's path, the warnings and the seconds taken; each
warning (rows repeated across splits, a suspicious shape) also goes to stderr as a ``warning:`` line. A malformed
input line exits with status 2 and a message naming the file, the line and the column; the output directory is then
left as it was.
"""

import argparse
import json
import os
import sys
import time

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()

from feature_spec.spec import SpecError  # pylint: disable=wrong-import-position
from serving import argtypes  # pylint: disable=wrong-import-position
from tfx_pipeline.importers import (amazon, common, criteo, libfm, movielens,  # pylint: disable=wrong-import-position
                                    sequence)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if not os.path.isfile(args.input):
            raise ValueError(f'{args.input}: no such file')
        fractions = common.parse_fractions(args.splits) if getattr(args, 'splits', None) else None
        if args.format == sequence.FORMAT:
            metadata = sequence.import_file(args.input, args.out, args.max_length, args.min_frequency)
        elif args.format == movielens.FORMAT:
            if args.movies is not None and not os.path.isfile(args.movies):
                raise ValueError(f'{args.movies}: no such file')
            metadata = movielens.import_file(args.input, args.out, args.movies, args.max_length, args.min_frequency,
                                             args.min_rating)
        elif args.format == criteo.FORMAT:
            metadata = criteo.import_file(args.input, args.out, fractions or criteo.DEFAULT_FRACTIONS,
                                          _default(args.min_frequency, criteo.DEFAULT_MIN_FREQUENCY))
        elif args.format == libfm.FORMAT:
            metadata = libfm.import_file(args.input, args.out, fractions or libfm.DEFAULT_FRACTIONS,
                                         _default(args.min_frequency, libfm.DEFAULT_MIN_FREQUENCY), args.split_by,
                                         args.seed)
        else:
            metadata = amazon.import_file(args.input, args.out, fractions or amazon.DEFAULT_FRACTIONS,
                                          _default(args.min_frequency, amazon.DEFAULT_MIN_FREQUENCY), args.max_length,
                                          args.split_by, args.seed)
    except (ValueError, SpecError, OSError) as e:  # InputError and UnicodeDecodeError are ValueErrors
        print(f'error: {e}', file=sys.stderr)
        return 2
    for warning in metadata.get('warnings', []):
        print(f'warning: {warning}', file=sys.stderr)
    print(json.dumps({
        'format': args.format,
        'out': args.out,
        'rows': {name: split['rows'] for name, split in metadata['splits'].items()},
        'ctr': {name: split['ctr'] for name, split in metadata['splits'].items()},
        'feature_spec': metadata['feature_spec'],
        'warnings': len(metadata.get('warnings', [])),
        'seconds': round(time.perf_counter() - start, 2),
    }), flush=True)
    return 0


def _default(value, default):
    return default if value is None else value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m tfx_pipeline.importers', description=__doc__.split('\n')[0])
    formats = parser.add_subparsers(dest='format', required=True)
    for name, module in ((criteo.FORMAT, criteo), (libfm.FORMAT, libfm), (amazon.FORMAT, amazon)):
        sub = formats.add_parser(name, help=module.__doc__.split('\n')[0])
        sub.add_argument('--input', required=True, help='the input file (.gz is read through gzip)')
        sub.add_argument('--out', required=True, help='output directory')
        sub.add_argument('--splits', help='train,eval,test fractions (default: '
                                          f'{",".join(map(str, module.DEFAULT_FRACTIONS))})')
        sub.add_argument('--min_frequency', type=argtypes.positive_int,
                         help=f'rarer ids of a column become OOV (default: {module.DEFAULT_MIN_FREQUENCY})')
        if module is amazon:
            sub.add_argument('--max_length', type=argtypes.positive_int, default=amazon.DEFAULT_MAX_LENGTH,
                             help='the most recent history steps kept (default: %(default)s)')
        if module is not criteo:
            default = common.RANDOM if module is libfm else common.BY_ORDER
            sub.add_argument('--split_by', choices=common.SPLIT_METHODS, default=default,
                             help='random (seeded) or line order (default: %(default)s)')
            sub.add_argument('--seed', type=int, default=0, help='seed of the random split')
    for name, module in ((sequence.FORMAT, sequence), (movielens.FORMAT, movielens)):
        sub = formats.add_parser(name, help=module.__doc__.split('\n')[0])
        sub.add_argument('--input', required=True, help=('ratings.dat' if module is movielens else 'the user item '
                                                         'file') + ' (.gz is read through gzip)')
        if module is movielens:
            sub.add_argument('--movies', help='movies.dat (latin-1): the genre and year side features')
            sub.add_argument('--min_rating', type=float, help='keep only the ratings >= this (default: every rating '
                                                              'is an interaction)')
        sub.add_argument('--out', required=True, help='output directory')
        sub.add_argument('--max_length', type=argtypes.positive_int, default=module.DEFAULT_MAX_LENGTH,
                         help='the most recent history items kept (default: %(default)s)')
        sub.add_argument('--min_frequency', type=argtypes.positive_int, default=module.DEFAULT_MIN_FREQUENCY,
                         help='rarer items (train split) become OOV (default: %(default)s)')
    return parser


if __name__ == '__main__':
    sys.exit(main())

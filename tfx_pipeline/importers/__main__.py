"""Command line: import a Criteo, libFM or Amazon (DIN/DIEN) file into the pipeline's data layout with a feature
spec.

    python -m tfx_pipeline.importers criteo --input FILE --out DIR [--splits 0.8,0.1,0.1] [--min_frequency 10]
    python -m tfx_pipeline.importers libfm --input FILE --out DIR [--splits 0.7,0.2,0.1] [--min_frequency 1]
        [--split_by random|order] [--seed 0]
    python -m tfx_pipeline.importers amazon --input FILE --out DIR [--splits 0.8,0.1,0.1] [--min_frequency 1]
        [--max_length 100] [--split_by order|random] [--seed 0]

Prints one JSON line: rows and CTR per split, the feature spec's path and the seconds taken. A malformed input line
exits with status 2 and a message naming the file, the line and the column, before anything is written.
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
from tfx_pipeline.importers import amazon, common, criteo, libfm  # pylint: disable=wrong-import-position


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        if not os.path.isfile(args.input):
            raise ValueError(f'{args.input}: no such file')
        fractions = common.parse_fractions(args.splits) if args.splits else None
        if args.format == criteo.FORMAT:
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
    print(json.dumps({
        'format': args.format,
        'out': args.out,
        'rows': {name: split['rows'] for name, split in metadata['splits'].items()},
        'ctr': {name: split['ctr'] for name, split in metadata['splits'].items()},
        'feature_spec': metadata['feature_spec'],
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
    return parser


if __name__ == '__main__':
    sys.exit(main())

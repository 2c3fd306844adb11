"""Command line: generate a synthetic click log and write it.

    python -m tfx_pipeline.data --preset default --out data/default [--seed N] [--num_impressions N]
        [--num_users N] [--drift X] [--session_focus X]
        [--formats tfrecord,csv] [--num_shards N]

Prints one JSON line: rows and CTR per split, the Bayes AUC and the seconds taken.
"""

import argparse
import dataclasses
import json
import sys
import time

from serving import argtypes
from tfx_pipeline.data import synthetic, writers


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    knobs = ('seed', 'num_impressions', 'num_users', 'drift', 'session_focus')
    overrides = {name: getattr(args, name) for name in knobs if getattr(args, name) is not None}
    formats = tuple(f for f in args.formats.split(',') if f)
    if not formats or set(formats) - set(writers.FORMATS):
        parser.error(f'argument --formats: {args.formats!r} is not a comma-separated subset of {writers.FORMATS}')
    start = time.perf_counter()
    try:
        config = dataclasses.replace(synthetic.PRESETS[args.preset], **overrides).validate()
        metadata = writers.generate_and_write(config, args.out, formats, args.num_shards)
    except synthetic.ConfigError as e:
        parser.error(f'argument --{e.knob if e.knob in overrides else "preset"}: {e}')
    print(json.dumps({
        'out': args.out,
        'preset': args.preset,
        'rows': {name: split['rows'] for name, split in metadata['splits'].items()},
        'ctr': {name: split['ctr'] for name, split in metadata['splits'].items()},
        'bayes_auc': metadata['bayes_auc'],
        'seconds': round(time.perf_counter() - start, 2),
    }), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m tfx_pipeline.data', description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=sorted(synthetic.PRESETS), default='default')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--num_impressions', type=argtypes.positive_int)
    parser.add_argument('--num_users', type=argtypes.positive_int)
    parser.add_argument('--drift', type=float, help='interest drift ρ per session, in [0, 1]')
    parser.add_argument('--session_focus', type=float, help='weight σ of each session\'s focus category, in [0, 1]')
    parser.add_argument('--formats', default=','.join(writers.FORMATS), help='comma-separated: tfrecord,csv')
    parser.add_argument('--num_shards', type=argtypes.positive_int, help='shards per split (default: 1 per 100k rows)')
    return parser


if __name__ == '__main__':
    sys.exit(main())

"""Trains a model on a synthetic data set of a given size and prints one JSON line of figures:
examples/s, test AUC, GAUC, log loss, the Bayes AUC and the fraction of the way from 0.5 to it.

    python benchmarks/train_throughput.py --model din --preset small
    python benchmarks/train_throughput.py --model deepfm --num_impressions 200000 --epochs 3
"""

import argparse
import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfx_pipeline import data  # pylint: disable=wrong-import-position
from tfx_pipeline import experiment  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='din')
    parser.add_argument('--preset', default='default', choices=sorted(data.PRESETS))
    parser.add_argument('--num_impressions', type=int, help='override the preset\'s size')
    parser.add_argument('--seed', type=int, default=0, help='generator seed')
    parser.add_argument('--epochs', type=int, default=TrainingConfig.epochs)
    parser.add_argument('--batch_size', type=int, default=TrainingConfig.batch_size)
    parser.add_argument('--learning_rate', type=float, default=TrainingConfig.learning_rate)
    parser.add_argument('--learning_rate_decay', type=float, default=TrainingConfig.learning_rate_decay,
                        help='per-epoch multiplier of the learning rate')
    parser.add_argument('--patience', type=int, default=TrainingConfig.early_stopping_patience,
                        help='early stopping patience in epochs (eval AUC)')
    parser.add_argument('--hparams', default='{}', help='JSON of model hyper-parameters')
    parser.add_argument('--feature_spec', default=experiment.DEFAULT_SPEC)
    parser.add_argument('--workdir', help='keep generated and transformed data here (default: a temp dir)')
    args = parser.parse_args(argv)

    generator_config = data.PRESETS[args.preset]
    overrides = {'seed': args.seed}
    if args.num_impressions:
        overrides['num_impressions'] = args.num_impressions
    generator_config = dataclasses.replace(generator_config, **overrides).validate()
    training = TrainingConfig(model=args.model, hparams=json.loads(args.hparams), epochs=args.epochs,
                              batch_size=args.batch_size, learning_rate=args.learning_rate, learning_rate_decay=args.learning_rate_decay,
                              early_stopping_patience=args.patience)
    workdir = args.workdir or tempfile.mkdtemp(prefix='train_throughput_')
    os.makedirs(workdir, exist_ok=True)
    prepared = experiment.prepare(generator_config, workdir, args.feature_spec)
    figures = experiment.fit_and_score(prepared, training)
    print(json.dumps({**figures, 'preset': args.preset, 'batch_size': args.batch_size}), flush=True)


if __name__ == '__main__':
    main()

"""Trains the retrieval models on one synthetic data set and scores each exported SavedModel as the pipeline's
Evaluator does: one JSON line per model, then a table (``make bench FAMILY=retrieval``).

    python benchmarks/retrieval.py                                  # every retrieval model, the default data set
    python benchmarks/retrieval.py --models two_tower two_tower_plain --preset small --epochs 5
    # the streaming estimate against static counts: a popularity shift on day 15, training in time order
    python benchmarks/retrieval.py --models two_tower two_tower_static_logq two_tower_plain \
        --data '{"popularity_shift": 1.0}' --shuffle_buffer 0 --workdir runs/bench-shift

Each row: Recall@50, Recall@100, NDCG@10 and MRR over the whole item vocabulary (full ranking, the history's items
excluded), HR@10 against 100 uniformly sampled negatives (for comparison with papers only), training positives a
second, parameters and epochs run, and Recall@50 over the users whose history spans the fewest and the most
categories (a third of the test rows each: :mod:`tfx_pipeline.retrieval_evaluation`). ``popularity`` is the
baseline: the items by their training positives, the same list for every user. With ``--item_feed`` the index also
holds the generator's item feed's new items (``new_items_*`` then counts them reached). Every model is trained
with the same schedule (the flags; the family's defaults below) on the clicked impressions of the training split,
early-stopped on the eval split's Recall@50, and tested on the test split's clicks (split by time).
"""

import argparse
import dataclasses
import glob
import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rec_models import registry  # pylint: disable=wrong-import-position
from tfx_pipeline import data  # pylint: disable=wrong-import-position
from tfx_pipeline import experiment  # pylint: disable=wrong-import-position
from tfx_pipeline import retrieval_evaluation  # pylint: disable=wrong-import-position
from tfx_pipeline.catalogue import vocabulary_tokens  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position

POPULARITY = 'popularity'
# The variants of the sampling-bias comparison first, then the other models in the order of the issue.
ORDER = ('two_tower', 'two_tower_static_logq', 'two_tower_plain', 'youtube_dnn', 'mind', 'sdm', 'sasrec', 'bert4rec',
         'transrec')
COLUMNS = ('model', 'recall_at_50', 'recall_at_100', 'ndcg_at_10', 'mrr', 'sampled_uniform_hr_at_10',
           'few_interests_recall_at_50', 'many_interests_recall_at_50', 'examples_per_s', 'params', 'epochs')
# The family's schedule: a retrieval model sees only the clicks (about 6% of the impressions), so it trains for
# more epochs than the ranking models, at a constant learning rate, stopped early on the eval Recall@50.
EPOCHS, LEARNING_RATE, DECAY, PATIENCE = 30, 0.003, 1.0, 3


def table(rows):
    """The figures as a Markdown table."""
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(str(row.get(c, '')) for c in COLUMNS) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', help='a subset (default: popularity and every retrieval model)')
    parser.add_argument('--preset', default='default', choices=sorted(data.PRESETS))
    parser.add_argument('--seed', type=int, default=0, help='generator seed')
    parser.add_argument('--data', default='{}', help='JSON of generator settings over the preset\'s')
    parser.add_argument('--epochs', type=int, default=EPOCHS)
    parser.add_argument('--batch_size', type=int, default=TrainingConfig.batch_size)
    parser.add_argument('--learning_rate', type=float, default=LEARNING_RATE)
    parser.add_argument('--learning_rate_decay', type=float, default=DECAY)
    parser.add_argument('--patience', type=int, default=PATIENCE)
    parser.add_argument('--item_feed', action='store_true',
                        help='add the generator\'s item feed to each index (new items reachable; rows new_items_*)')
    parser.add_argument('--shuffle_buffer', type=int, default=TrainingConfig.shuffle_buffer,
                        help='0: the training clicks in time order (each epoch replays the log), as streamed')
    parser.add_argument('--hparams', default='{}', help='JSON of hyper-parameters given to every model')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench'), help='generated and transformed data')
    args = parser.parse_args(argv)

    registered = registry.names_of_kind(registry.RETRIEVAL)
    models = args.models or [POPULARITY] + [m for m in ORDER if m in registered] + sorted(
        set(registered) - set(ORDER))
    generator = dataclasses.replace(data.PRESETS[args.preset], seed=args.seed, **json.loads(args.data)).validate()
    prepared = experiment.prepare(generator, os.path.join(args.workdir, f'{args.preset}-{args.seed}'))
    test_data = experiment.retrieval_test_data(prepared)
    feed = None
    if args.item_feed:
        data_dir = os.path.dirname(os.path.dirname(os.path.dirname(prepared.raw['train'])))  # <dir>/tfrecord/train/*
        feed = os.path.join(data_dir, 'tfrecord', data.ITEMS, '*')
        if not glob.glob(feed):   # data written before the generator wrote its feed
            data.write_item_feed(data.item_feed(generator), data_dir, ('tfrecord',))
    hparams = json.loads(args.hparams)
    rows = []
    for model in models:
        if model == POPULARITY:
            item = retrieval_evaluation.item_columns(prepared.spec)[0]
            tokens = vocabulary_tokens(prepared.tft_output, item.vocabulary)
            examples, counts, known = test_data
            row = {'model': POPULARITY, **retrieval_evaluation.evaluate_popularity(
                tokens, prepared.spec, examples, counts, train_users=known)}
        else:
            cls, _ = registry.get(model)
            accepted = set(registry.hparam_names(cls))
            config = TrainingConfig(model=model, epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=args.learning_rate, learning_rate_decay=args.learning_rate_decay,
                                    early_stopping_patience=args.patience, seed=args.seed,
                                    shuffle_buffer=args.shuffle_buffer,
                                    hparams={k: v for k, v in hparams.items() if k in accepted})
            row = experiment.fit_and_score_retrieval(prepared, config, test_data, item_feed=feed)
        row = {'preset': args.preset, 'seed': args.seed, 'data': json.loads(args.data),
               'shuffle_buffer': args.shuffle_buffer, 'item_feed': args.item_feed, **row}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(table(rows))


if __name__ == '__main__':
    main()

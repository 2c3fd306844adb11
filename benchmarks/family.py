"""Trains every model of a family on one data set (synthetic or imported) and prints one JSON line per model
(model, test_auc, gauc, logloss, fraction_of_ceiling, examples_per_s, params, …), then a readable table.

    python benchmarks/family.py --family interaction --preset default     # make bench FAMILY=interaction
    python benchmarks/family.py --family interaction --preset small --models lr fm fnn_fm_init
    python benchmarks/family.py --family sequence --models din dien --data '{"drift": 0.6}'
    python benchmarks/family.py --family sequence --models base_model din dsin --data '{"session_focus": 0.8}'
    python benchmarks/family.py --family interaction --models lr fm --data_dir data/frappe   # an importer's output

Every model is trained the same way (the Trainer's settings below, the family's shared hyper-parameters, each
model taking those it accepts: LR has no embedding width) on the same data, generated (``--preset`` with the
generator settings of ``--data`` over it) or imported (``--data_dir``: an output directory of
``python -m tfx_pipeline.importers``, read with its own feature spec), and transformed once into ``--workdir``.
Besides the registered models a family lists variants (``VARIANTS``): ``fnn_fm_init`` is FNN initialised from the
``fm`` trained in the same run (trained first when it is not in ``--models``), ``dien_no_aux``, ``dmr_no_aux`` and
``dmin_no_aux`` leave out the auxiliary loss.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rec_models import registry  # pylint: disable=wrong-import-position
from tfx_pipeline import data  # pylint: disable=wrong-import-position
from tfx_pipeline import experiment  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position

FM_INITIALISED = 'fnn_fm_init'
FM_EXPORT = '<the fm trained in this run>'
# Benchmark entries that are a registered model with other hyper-parameters.
VARIANTS = {FM_INITIALISED: ('fnn', {'fm_model': FM_EXPORT}), 'dien_no_aux': ('dien', {'aux_weight': 0.0}),
            'dmr_no_aux': ('dmr', {'aux_weight': 0.0}), 'dmin_no_aux': ('dmin', {'aux_weight': 0.0})}
# Each family: its models in the order they are trained, and the hyper-parameters every one of them gets.
FAMILIES = {
    # History as fields whose step values are learned from the time gap and behaviour type (README, "Models"); one
    # width k = 16 for every field, the spec's width of the item, category and brand embeddings.
    'interaction': (('lr', 'poly2', 'fm', 'ffm', 'fnn', FM_INITIALISED, 'pnn', 'opnn', 'wide_deep', 'dcn', 'nfm', 'afm',
                     'autoint', 'deepfm', 'deepffm', 'fat_deepffm', 'transfm'),
                    {'use_behavior': 'learned', 'embedding_dim': 16}),
    # The behaviour-sequence models with their own defaults; base_model (sum pooling) is the reference.
    'sequence': (('base_model', 'din', 'dien', 'dien_aigru', 'dien_agru', 'dien_no_aux', 'dsin', 'bst', 'dmr',
                  'dmr_no_aux', 'dmin', 'dmin_no_aux', 'deepmcp', 'atrank', 'dupn', 'dstn', 'dstn_pooling',
                  'dstn_self_attention'), {}),
}
COLUMNS = ('model', 'test_auc', 'gauc', 'logloss', 'fraction_of_ceiling', 'examples_per_s', 'params', 'epochs')


def _registered(name):
    """The registered model a benchmark entry trains."""
    return VARIANTS[name][0] if name in VARIANTS else name


def _directory_name(path):
    """A workdir name for an imported data directory: its last component and a short hash of its absolute path."""
    absolute = os.path.abspath(path)
    return f'{os.path.basename(absolute.rstrip(os.sep)) or "data"}-{hashlib.sha1(absolute.encode()).hexdigest()[:8]}'


def table(rows):
    """The figures as a Markdown table."""
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(str(row[c]) for c in COLUMNS) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--family', default='interaction', choices=sorted(FAMILIES))
    parser.add_argument('--models', nargs='+', help='a subset of the family (default: all of it)')
    parser.add_argument('--preset', default='default', choices=sorted(data.PRESETS))
    parser.add_argument('--seed', type=int, default=0, help='generator seed')
    parser.add_argument('--data', default='{}', help='JSON of generator settings over the preset\'s, e.g. '
                                                    '\'{"drift": 0.6}\' (tfx_pipeline/data/synthetic.py)')
    parser.add_argument('--data_dir', help='an importer\'s output directory (python -m tfx_pipeline.importers) to '
                                           'train on instead of generated data; --preset, --seed and --data do not '
                                           'apply then')
    parser.add_argument('--epochs', type=int, default=TrainingConfig.epochs)
    parser.add_argument('--batch_size', type=int, default=TrainingConfig.batch_size)
    parser.add_argument('--hparams', default='{}', help='JSON of hyper-parameters over the family\'s shared ones')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench'),
                        help='generated and transformed data (reused when it holds the same data set) and the '
                             'FM that fnn_fm_init starts from')
    args = parser.parse_args(argv)

    family, shared = FAMILIES[args.family]
    models = args.models or list(family)
    unknown = sorted(set(models) - set(family))
    if unknown:
        parser.error(f'--models: {unknown} are not in the {args.family} family {family}')
    if FM_INITIALISED in models and 'fm' not in models:
        models.insert(models.index(FM_INITIALISED), 'fm')
    given = json.loads(args.hparams)
    hparams = {**shared, **given}
    accepted = {name: set(registry.hparam_names(registry.get(_registered(name))[0])) for name in models}
    unused = sorted(set(given) - set().union(*accepted.values()))
    if unused:
        parser.error(f'--hparams: no model of {models} accepts {unused}')
    overrides = json.loads(args.data)
    if args.data_dir:
        if overrides:
            parser.error('--data (generator settings) does not apply to --data_dir (imported data)')
        workdir = os.path.join(args.workdir, 'imported-' + _directory_name(args.data_dir))
        try:
            prepared = experiment.prepare_imported(args.data_dir, workdir)
        except FileNotFoundError as e:
            parser.error(f'--data_dir: {e}')
        source = {'data_dir': args.data_dir}
    else:
        try:
            generator = dataclasses.replace(data.PRESETS[args.preset], seed=args.seed, **overrides).validate()
        except (TypeError, ValueError) as e:
            parser.error(f'--data: {e}')
        suffix = ''.join(f'-{key}={value}' for key, value in sorted(overrides.items()))
        workdir = os.path.join(args.workdir, f'{args.preset}-{args.seed}{suffix}')
        prepared = experiment.prepare(generator, workdir)
        source = {'preset': args.preset, **({'data': overrides} if overrides else {})}
    if prepared.spec.behavior is None and 'use_behavior' not in given:
        hparams.pop('use_behavior', None)  # data without behaviour sequences (a libFM or Criteo import)
    fm_export = os.path.join(workdir, 'fm_model')
    rows = []
    for name in models:
        model = _registered(name)
        model_hparams = {key: value for key, value in hparams.items() if key in accepted[name]}
        model_hparams.update({key: fm_export if value == FM_EXPORT else value
                              for key, value in VARIANTS.get(name, ('', {}))[1].items()})
        config = TrainingConfig(model=model, hparams=model_hparams, epochs=args.epochs, batch_size=args.batch_size)
        figures = experiment.fit_and_score(prepared, config, export_dir=fm_export if name == 'fm' else None)
        rows.append({**figures, 'model': name, **source})
        print(json.dumps(rows[-1]), flush=True)
    print(table(rows), flush=True)


if __name__ == '__main__':
    main()

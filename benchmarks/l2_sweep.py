"""Sweep of the mini-batch-aware L2 (λ, the models' ``l2``) on the synthetic data set and on two public-format data
sets that the synthetic generator did not make (issue 16 §2: defaults must hold on real data, not only ours).

    python benchmarks/l2_sweep.py                                    # the whole sweep, ~1 h on 2 CPU cores
    python benchmarks/l2_sweep.py --datasets frappe --models lr fm --l2 0 0.01 0.1 1
    python benchmarks/l2_sweep.py --table                            # the table of what the results file holds
    python benchmarks/l2_sweep.py --datasets synthetic --preset small  # the synthetic preset small (faster)

Data sets (each transformed once under ``--workdir``):

* ``frappe``: a frappe-shaped libFM file (:mod:`tfx_pipeline.data.public_formats`, full size: 288,609 lines, 957 users,
  4,082 items, 8 context fields; one logged use and 2 random-item negatives) imported by
  :mod:`tfx_pipeline.importers.libfm` (random 70/20/10 split). Models ``lr`` and ``fm``.
* ``amazon``: an Amazon (DIN/DIEN) format file (:mod:`tfx_pipeline.data.public_formats`: 8,000 users, 6,000 items, 300
  categories, ~8.8 reviews a user; next review vs a random item) imported by :mod:`tfx_pipeline.importers.amazon`
  (80/10/10 by line order, i.e. by user). Model ``din``.
* ``synthetic``: the generator's preset ``--preset`` (default ``default``). Models ``lr``, ``fm`` and ``din``.

``--frappe_dir`` / ``--amazon_dir`` take an importer's output instead (e.g. the real files, imported). Every model is
trained as ``benchmarks/family.py`` trains it: the Trainer's defaults (batch 512, 8 epochs, Adam 0.003 halved every
epoch, early stopping on the eval AUC with patience 2, best epoch's weights), the family's shared hyper-parameters
(interaction: ``embedding_dim`` 16, behaviour sequences as fields with learned step values where the data has
them) and ``l2`` = λ, scored on the raw test split through the serving path.

λ values: plain numbers, or ``c/B`` (e.g. ``1/B``): λ = c / batch size, the candidate default derived from the
data's batching rather than tuned. The regulariser adds λ Σ_{j ∈ batch} ‖w_j‖² / n_j per step to a batch-mean
loss, so over an epoch id j is penalised about λ ‖w_j‖² against a data term of n_j / B: relative to the summed
log-likelihood the prior's weight is λ·B. λ = c/B makes it c whatever the batch size (a Gaussian prior of fixed
precision on every embedding row), where a fixed λ = 1 at B = 512 weighs each row like 512 examples.

Prints one JSON line per (dataset, model, λ) — test_auc, logloss, gauc, epochs, seconds — appended to
``<workdir>/results.jsonl`` (runs already there are not run again, so an interrupted sweep resumes), then a Markdown
table: test AUC by λ with each one's gap to the best λ of its (dataset, model), the worst gap of each λ over all of
them and over each family's (lr and fm; din), and the λ whose worst gap is smallest.
"""

import argparse
import json
import os
import sys
import time
from fractions import Fraction

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import family  # pylint: disable=wrong-import-position
from tfx_pipeline.data import public_formats  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position

DATASETS = {'frappe': ('lr', 'fm'), 'amazon': ('din',), 'synthetic': ('lr', 'fm', 'din')}
DEFAULT_L2 = ('0', '0.001', '1/B', '0.01', '0.1', '0.3', '1')
FAMILY_OF = {'lr': 'interaction', 'fm': 'interaction', 'din': 'sequence'}
MARGIN = 0.005


def l2_value(text: str, batch_size: int) -> float:
    """``'0.1'`` → 0.1; ``'c/B'`` → c / batch_size."""
    if text.endswith('/B'):
        return float(Fraction(text[:-2] or '1')) / batch_size
    return float(text)


def imported(name: str, data_dir: str, workdir: str, seed: int) -> str:
    """The importer's output directory of ``name``: ``data_dir`` when given, else the public-format file written by
    :mod:`tfx_pipeline.data.public_formats` and imported under ``workdir`` (once)."""
    from tfx_pipeline.importers import amazon, libfm  # pylint: disable=import-outside-toplevel
    if data_dir:
        return data_dir
    out = os.path.join(workdir, f'{name}_data')
    if not os.path.exists(os.path.join(out, 'metadata.json')):
        source = os.path.join(workdir, f'{name}_like.txt')
        if name == 'frappe':
            written = public_formats.frappe(source, seed=seed)
            libfm.import_file(source, out)
        else:
            written = public_formats.amazon(source, seed=seed)
            amazon.import_file(source, out)
        print(json.dumps({'written': written}), flush=True)
    return out


def prepare(name: str, args):
    from tfx_pipeline import data, experiment  # pylint: disable=import-outside-toplevel
    if name == 'synthetic':
        return experiment.prepare(data.PRESETS[args.preset], os.path.join(args.workdir, f'synthetic-{args.preset}'))
    data_dir = imported(name, getattr(args, f'{name}_dir'), args.workdir, args.seed)
    return experiment.prepare_imported(data_dir, os.path.join(args.workdir, f'{name}-transformed'))


def hparams(model: str, prepared, l2: float) -> dict:
    """The family's shared hyper-parameters the model accepts (without behaviour fields where the data has no
    behaviour sequence), and ``l2``."""
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    shared = dict(family.FAMILIES[FAMILY_OF[model]][1])
    if prepared.spec.behavior is None:
        shared.pop('use_behavior', None)
    accepted = set(registry.hparam_names(registry.get(model)[0]))
    return {**{key: value for key, value in shared.items() if key in accepted}, 'l2': l2}


def dataset_label(name: str, args) -> str:
    return f'synthetic-{args.preset}' if name == 'synthetic' else name


def run(args) -> None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import experiment  # pylint: disable=import-outside-toplevel
    done = {_key(row) for row in _results(args.results)}
    for name in args.datasets:
        models = [m for m in DATASETS[name] if m in args.models]
        if not models:
            continue
        prepared = None
        for model in models:
            for text in args.l2:
                l2 = l2_value(text, args.batch_size)
                row = {'dataset': dataset_label(name, args), 'model': model, 'l2': text, 'l2_value': l2,
                       'batch_size': args.batch_size}
                if _key(row) in done:
                    continue
                prepared = prepared or prepare(name, args)
                config = TrainingConfig(model=model, hparams=hparams(model, prepared, l2), epochs=args.epochs,
                                        batch_size=args.batch_size)
                start = time.perf_counter()
                figures = experiment.fit_and_score(prepared, config)
                row.update({key: figures[key] for key in ('test_auc', 'logloss', 'gauc', 'epochs', 'train_rows')})
                row['seconds'] = round(time.perf_counter() - start, 1)
                print(json.dumps(row), flush=True)
                with open(args.results, 'a') as f:
                    f.write(json.dumps(row) + '\n')
                tf.keras.backend.clear_session()


def _key(row):
    return row['dataset'], row['model'], row['l2'], row['batch_size']


def _results(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def table(rows, margin: float = MARGIN) -> str:
    """Test AUC by λ (columns, in increasing λ) for each (dataset, model, batch size), with the gap to that row's
    best; then each λ's worst gap over every row, over each family's rows (lr and fm: interaction; din: sequence),
    and the λ with the smallest worst gap in each."""
    rows = [row for row in rows if row.get('test_auc') is not None]
    groups = {}
    for row in rows:
        groups.setdefault((row['dataset'], row['model'], row['batch_size']), {})[row['l2']] = row
    labels = sorted({row['l2'] for row in rows}, key=lambda text: min(r['l2_value'] for r in rows if r['l2'] == text))
    header = ['dataset', 'model', 'B', *[f'λ={label}' for label in labels]]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    scopes = {'all': set(FAMILY_OF), **{family_name: {m for m, f in FAMILY_OF.items() if f == family_name}
                                         for family_name in sorted(set(FAMILY_OF.values()))}}
    worst = {scope: {label: 0.0 for label in labels} for scope in scopes}
    for (dataset, model, batch), by_l2 in sorted(groups.items()):
        best = max(row['test_auc'] for row in by_l2.values())
        cells = []
        for label in labels:
            gap = by_l2[label]['test_auc'] - best if label in by_l2 else float('nan')
            for scope, models in scopes.items():
                if model in models:
                    worst[scope][label] = min(worst[scope][label], gap) if gap == gap else gap
            cells.append(f'{by_l2[label]["test_auc"]:.4f} ({gap:+.4f})' if label in by_l2 else '–')
        lines.append(f'| {dataset} | {model} | {batch} | ' + ' | '.join(cells) + ' |')
    notes = []
    present = {model for _, model, _ in groups}
    for scope, models in scopes.items():
        if not models & present:
            continue
        name = f'worst gap ({scope})' if scope == 'all' else f'worst gap ({", ".join(sorted(models))})'
        lines.append(f'| {name} | | | ' + ' | '.join(f'{worst[scope][label]:+.4f}' for label in labels) + ' |')
        complete = {label: gap for label, gap in worst[scope].items() if gap == gap}
        if complete:
            chosen = max(complete, key=complete.get)
            within = [label for label, gap in complete.items() if gap >= -margin]
            notes.append(f'{name}: smallest at λ={chosen} ({complete[chosen]:+.4f}); within {margin} of the best '
                         f'on every row: {", ".join(f"λ={label}" for label in within) or "none"}.')
    return '\n'.join(lines + [''] + notes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument('--models', nargs='+', default=['lr', 'fm', 'din'], choices=['lr', 'fm', 'din'])
    parser.add_argument('--l2', nargs='+', default=list(DEFAULT_L2), help='λ values: numbers or c/B')
    parser.add_argument('--preset', default='default', help='the synthetic preset')
    parser.add_argument('--frappe_dir', default='', help='an importer\'s output to use as the frappe data set')
    parser.add_argument('--amazon_dir', default='', help='an importer\'s output to use as the Amazon data set')
    parser.add_argument('--seed', type=int, default=0, help='seed of the public-format files written')
    parser.add_argument('--epochs', type=int, default=TrainingConfig.epochs)
    parser.add_argument('--batch_size', type=int, default=TrainingConfig.batch_size)
    parser.add_argument('--workdir', default=os.path.join('runs', 'l2_sweep'))
    parser.add_argument('--results', help='the JSON-lines file of results (default: <workdir>/results.jsonl)')
    parser.add_argument('--table', action='store_true', help='only print the table of the results file (of the '
                                                              'data sets, models, λ and batch size asked for)')
    args = parser.parse_args(argv)
    args.results = args.results or os.path.join(args.workdir, 'results.jsonl')
    for text in args.l2:
        try:
            l2_value(text, args.batch_size)
        except (ValueError, ZeroDivisionError):
            parser.error(f'--l2: {text!r} is not a number or c/B')
    os.makedirs(args.workdir, exist_ok=True)
    if not args.table:
        run(args)
    shown = {dataset_label(name, args) for name in args.datasets}
    print(table([row for row in _results(args.results) if row['dataset'] in shown and row['model'] in args.models
                 and row['l2'] in args.l2 and row['batch_size'] == args.batch_size]), flush=True)


if __name__ == '__main__':
    main()

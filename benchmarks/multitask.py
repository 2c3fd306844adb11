"""The multi-task and debiasing family's evidence: one JSON line per row, a table per experiment, and the MMoE plot.

    python benchmarks/multitask.py                                  # make bench FAMILY=multitask: every experiment
    python benchmarks/multitask.py --experiments mmoe --seeds 3     # one experiment
    python benchmarks/multitask.py --experiments debiasing --preset small

Experiments:

* ``mmoe``: the MMoE paper's synthetic regression tasks (:mod:`tfx_pipeline.data.mmoe_tasks`) at task correlations
  p = 0.5, 0.9, 1.0, several seeds each, for each draw of the sines in ``--mmoe_sines``
  (:data:`tfx_pipeline.data.mmoe_tasks.SINES_DRAWS`): the test loss (MSE) of each task, and that loss over the test
  labels' variance (the share left unexplained), for shared-bottom, OMoE and MMoE at about equal parameter counts
  (the paper's sizes: 8 experts of 16 units, towers of 8, a shared bottom of 113 units), each trained with Adam
  (10⁻³, batch 128) until the loss on held-out rows stops falling; rows ``{experiment, sines_draw, model,
  correlation, task_k_loss, task_k_std, task_k_unexplained, task_k_unexplained_std (k = 1, 2), params, seeds,
  label_variance}`` and ``mmoe_<sines_draw>.png`` (the unexplained share against p) in ``--out``.
* ``debiasing``: on the click log, the relevance AUC (served scores against the click-if-examined draws) and the
  NDCG of each request's candidates against the true relevance, for a position-blind model, the position as a
  feature served at the first position, YouTube's shallow tower, PAL and the adversarial bias net at λ = 0 and at
  its default, all on the same bottom; and the relevance AUC's own ceiling (the true relevance's AUC on the draws).
* ``selection_bias``: pCVR's AUC over all test impressions against the conversion-if-clicked draws, and on the
  clicked impressions against the purchases, for ESMM, ESM2 and the CVR model trained on clicked impressions only.
* ``distillation``: test AUC of the student alone, the distilled student and the teacher (which reads the
  privileged feature).
"""

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402  pylint: disable=wrong-import-position

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402  pylint: disable=wrong-import-position
from rec_models import metrics, registry  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline import data, experiment  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # noqa: E402  pylint: disable=wrong-import-position
from tfx_pipeline.data import mmoe_tasks  # noqa: E402  pylint: disable=wrong-import-position

EXPERIMENTS = ('mmoe', 'debiasing', 'selection_bias', 'distillation')
# The MMoE benchmark's models at about equal parameter counts (the paper's sizes, §3.3).
MMOE_MODELS = {
    'shared_bottom': {'expert_units': (113,), 'tower_units': (8,)},
    'omoe': {'num_experts': 8, 'expert_units': (16,), 'tower_units': (8,)},
    'mmoe': {'num_experts': 8, 'expert_units': (16,), 'tower_units': (8,)},
}
# Rows of the click-log experiments: (row name, registered model, hyper-parameters).
DEBIASING = (('position_blind', 'position_blind', {}), ('position_feature', 'position_feature', {}),
             ('youtube_ranker', 'youtube_ranker', {}), ('pal', 'pal', {}),
             ('adversarial_debiasing_lambda_0', 'adversarial_debiasing', {'adversarial_weight': 0.0}),
             ('adversarial_debiasing', 'adversarial_debiasing', {}))
SELECTION_BIAS = (('cvr_on_clicks', 'cvr_on_clicks', {}), ('esmm', 'esmm', {}), ('esm2', 'esm2', {}))
DISTILLATION = (('student_alone', 'privileged_distillation', {'teacher': False}),
                ('distilled_student', 'privileged_distillation', {}))


def mmoe_inputs(dim: int) -> ModelInputs:
    """d numeric inputs and the two regression labels, each its own role."""
    return ModelInputs(fields=tuple(InputField(f'{mmoe_tasks.FEATURE}_{j}', 'numeric', 'user') for j in range(dim)),
                       labels=mmoe_tasks.LABELS, label_roles=tuple((y, y) for y in mmoe_tasks.LABELS))


def mmoe_run(name, hparams, columns, train_rows, epochs, seed):
    """(task losses on the test rows, the test labels' variances, parameter count) of one model trained on the first
    ``train_rows``, stopped early on the next ``train_rows // 5`` (the sum of the two losses, patience 5, the best
    epoch's weights); the test rows are the last ``train_rows // 5``."""
    tf.keras.utils.set_random_seed(seed)
    dim = sum(1 for key in columns if key.startswith(mmoe_tasks.FEATURE))
    model = registry.build(name, mmoe_inputs(dim), {**hparams, 'objectives': mmoe_tasks.LABELS,
                                                    'objective_kind': 'regression'})
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    held_out = train_rows // 5
    train = {key: value[:train_rows] for key, value in columns.items()}
    validation = {key: value[train_rows:train_rows + held_out] for key, value in columns.items()}
    test = {key: value[train_rows + held_out:] for key, value in columns.items()}
    labels = list(mmoe_tasks.LABELS)
    stop = tf.keras.callbacks.EarlyStopping(monitor='val_loss', patience=5, restore_best_weights=True)
    model.fit(train, {y: train[y] for y in labels}, validation_data=(validation, {y: validation[y] for y in labels}),
              batch_size=128, epochs=epochs, callbacks=[stop], verbose=0)
    outputs = model.predict(test, batch_size=4096, verbose=0)
    losses = [float(np.mean((outputs[y].reshape(-1) - test[y]) ** 2)) for y in labels]
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    return losses, [float(np.var(test[y])) for y in labels], params


def mmoe_experiment(args):
    """One row per sines draw, correlation and model: each task's test MSE and its MSE over the test labels'
    variance (the share of the variance left unexplained, comparable across seeds whose sines differ), mean and
    standard deviation over the seeds."""
    rows = []
    for sines_draw in args.mmoe_sines:
        mine = []
        for correlation in args.correlations:
            for name, hparams in MMOE_MODELS.items():
                losses, variances = [], []
                for seed in range(args.seeds):
                    columns = mmoe_tasks.generate(mmoe_tasks.TaskConfig(
                        correlation=correlation, seed=seed, sines_draw=sines_draw,
                        rows=args.mmoe_rows + 2 * (args.mmoe_rows // 5)))
                    loss, variance, params = mmoe_run(name, hparams, columns, args.mmoe_rows, args.mmoe_epochs, seed)
                    losses.append(loss)
                    variances.append(variance)
                losses, variances = np.array(losses), np.array(variances)
                row = {'experiment': 'mmoe', 'sines_draw': sines_draw, 'model': name, 'correlation': correlation}
                for k in range(len(mmoe_tasks.LABELS)):
                    unexplained = losses[:, k] / variances[:, k]
                    row.update({f'task_{k + 1}_loss': round(float(losses[:, k].mean()), 4),
                                f'task_{k + 1}_std': round(float(losses[:, k].std()), 4),
                                f'task_{k + 1}_unexplained': round(float(unexplained.mean()), 4),
                                f'task_{k + 1}_unexplained_std': round(float(unexplained.std()), 4)})
                row.update({'params': params, 'seeds': args.seeds,
                            'label_variance': round(float(variances.mean()), 3)})
                mine.append(emit(row))
        plot_mmoe(mine, os.path.join(args.out, f'mmoe_{sines_draw}.png'))
        rows += mine
    return rows


def plot_mmoe(rows, path):
    """Each task's mean unexplained share of the test labels' variance (± one standard deviation over seeds) against
    the correlation p, per model."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for task, axis in zip((1, 2), axes):
        for name in MMOE_MODELS:
            mine = sorted((r for r in rows if r['model'] == name), key=lambda r: r['correlation'])
            p = [r['correlation'] for r in mine]
            mean = np.array([r[f'task_{task}_unexplained'] for r in mine])
            std = np.array([r[f'task_{task}_unexplained_std'] for r in mine])
            axis.errorbar(p, mean, yerr=std, marker='o', capsize=3, label=name)
        axis.set_title(f'task {task}')
        axis.set_xlabel('task correlation p')
        axis.grid(alpha=0.3)
    axes[0].set_ylabel('test MSE / label variance')
    axes[0].legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    figure.savefig(path, dpi=100)
    print(json.dumps({'plot': path}), flush=True)


def click_log_experiment(experiment_name, entries, prepared, args, extra=None):
    """Trains each entry on the prepared click log and scores it on the raw test split."""
    rows = []
    for row_name, model, hparams in entries:
        config = TrainingConfig(model=model, hparams={**hparams, **json.loads(args.hparams)}, epochs=args.epochs,
                                batch_size=args.batch_size)
        figures = experiment.fit_and_score(prepared, config, extra=extra)
        rows.append(emit({'experiment': experiment_name, **figures, 'model': row_name}))
    return rows


def ceilings(prepared):
    """The data's own ceilings on the test split: the true relevance's AUC on the click-if-examined draws and the
    true CVR's AUC on the conversion-if-clicked draws (the probabilities each draw was made from)."""
    columns, spec = prepared.test_columns, prepared.spec
    figures = {}
    for draws, truth in (('relevance', 'true_relevance'), ('conversion_if_clicked', 'true_cvr')):
        if {draws, truth} <= set(spec.roles):
            figures[f'{draws}_auc_ceiling'] = round(metrics.auc(columns[spec.label_for(draws)],
                                                                columns[spec.label_for(truth)]), 5)
    return figures


def teacher_auc(prepared):
    """The teacher's test AUC, from the transformed test split (it reads the privileged feature serving lacks)."""
    def figures(model):
        if not model.hparams.get('teacher'):
            return {}
        scores = experiment.predict_transformed(model, prepared, 'test', 'teacher')
        return {'teacher_auc': round(metrics.auc(prepared.test_columns[prepared.spec.labels[0]], scores), 5)}
    return figures


def emit(row):
    print(json.dumps(row), flush=True)
    return row


def table(rows, columns):
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(str(row.get(c, '')) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


TABLE_COLUMNS = {
    'mmoe': ('sines_draw', 'model', 'correlation', 'task_1_unexplained', 'task_1_unexplained_std',
             'task_2_unexplained', 'task_2_unexplained_std', 'task_1_loss', 'task_2_loss', 'label_variance'),
    'debiasing': ('model', 'relevance_auc', 'ndcg', 'test_auc', 'logloss', 'epochs'),
    'selection_bias': ('model', 'conversion_if_clicked_auc', 'cvr_auc_given_click', 'cvr_auc', 'ctcvr_auc',
                       'ctr_auc', 'epochs'),
    'distillation': ('model', 'test_auc', 'teacher_auc', 'gauc', 'logloss', 'epochs'),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--experiments', nargs='+', default=list(EXPERIMENTS), choices=EXPERIMENTS)
    parser.add_argument('--preset', default='default', choices=sorted(data.PRESETS))
    parser.add_argument('--seed', type=int, default=0, help='generator seed of the click log')
    parser.add_argument('--epochs', type=int, default=TrainingConfig.epochs)
    parser.add_argument('--batch_size', type=int, default=TrainingConfig.batch_size)
    parser.add_argument('--hparams', default='{}', help='JSON of hyper-parameters every click-log model gets')
    parser.add_argument('--correlations', nargs='+', type=float, default=[0.5, 0.9, 1.0])
    parser.add_argument('--seeds', type=int, default=5, help='MMoE runs per model and correlation')
    parser.add_argument('--mmoe_rows', type=int, default=10_000,
                        help='training rows of each MMoE run (validation and test: 20%% each)')
    parser.add_argument('--mmoe_epochs', type=int, default=100, help='at most; early stopping on the validation rows')
    parser.add_argument('--mmoe_sines', nargs='+', default=['normal', 'fixed'], choices=mmoe_tasks.SINES_DRAWS,
                        help="the sines' α and β: drawn from N(0, 1) per seed, or fixed (α_i = i, "
                             'β_i = (i − 1)²)')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench'))
    parser.add_argument('--out', default=os.path.join('runs', 'bench', 'multitask'), help='where the plot goes')
    args = parser.parse_args(argv)
    results = {}
    if 'mmoe' in args.experiments:
        results['mmoe'] = mmoe_experiment(args)
    click_log = [e for e in args.experiments if e != 'mmoe']
    if click_log:
        generator = dataclasses.replace(data.PRESETS[args.preset], seed=args.seed)
        prepared = experiment.prepare(generator, os.path.join(args.workdir, f'{args.preset}-{args.seed}'))
        emit({'experiment': 'ceilings', **ceilings(prepared)})
        entries = {'debiasing': DEBIASING, 'selection_bias': SELECTION_BIAS, 'distillation': DISTILLATION}
        for name in click_log:
            results[name] = click_log_experiment(name, entries[name], prepared, args,
                                                 teacher_auc(prepared) if name == 'distillation' else None)
    for name, rows in results.items():
        print(f'\n{name}\n' + table(rows, TABLE_COLUMNS[name]), flush=True)


if __name__ == '__main__':
    main()

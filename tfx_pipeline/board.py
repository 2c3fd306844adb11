"""TensorBoard logs of a trained model: Keras' per-epoch scalars and what else a person opens TensorBoard for.

A Trainer's log directory (its ModelRun artifact, ``fn_args.model_run_dir``) holds these runs:

    train/, validation/   per-epoch scalars ``epoch_<name>`` (Keras' callback): the total loss, every task's
                          metrics and losses (``ctr_auc``, ``ctr_loss``, …), ``regularization_loss`` (the L2 term,
                          when the model has one) and ``learning_rate`` (train/ only).
                          train/ also holds per-epoch histograms of every embedding table (``embeddings/<table>``)
                          and of each served head's predictions on a fixed sample of the eval split
                          (``predictions/<head>``, and split by its label: ``…/positives``, ``…/negatives``).
                          validation/ holds the primary head's PR curve on that sample (``pr_curve/<head>``) with the
                          best epoch's weights.
    projector/            the embedding projector for every vocabulary table (item, category, brand, …): a
                          checkpoint of the tables, ``projector_config.pbtxt`` pointing at it, and one metadata
                          TSV per table whose rows are Transform's vocabulary (label, training-data frequency).
                          Choice: written here rather than by Keras' ``embeddings_freq``, which writes no labels and
                          names the callback's checkpoint, not the tables.
    attention/            the model's attention outputs as heat-map images for a fixed sample of logged test
                          users (the eval split's first rows without logged examples): DIN's activation weights over
                          the history (``attention_weights``, user × step), AutoInt's and BST's heads
                          (``attention_maps``, one panel per head, averaged over the sample), the multi-task
                          gates (``gates``: task × expert), DMIN's, DSTN's and the others' ``*_weights``.
    (the directory)       the hparams dashboard's session: model name, schedule and the model's hyper-parameters,
                          so the hparams tab compares the models of one run (``python -m tfx_pipeline tensorboard``
                          opens them together).

After the run, :func:`write_evaluation` adds the Evaluator's metrics per slice as scalars
(``runs/<name>/tensorboard/<model>/``); :func:`log_dirs` lists every directory of a run.
"""

import os
from typing import Dict, List, Optional, Sequence

import absl.logging
import numpy as np
import tensorflow as tf

from feature_spec import resolve
from feature_spec import spec as spec_lib

SAMPLE_ROWS = 4096       # eval rows whose predictions are histogrammed each epoch (and give the PR curve)
ATTENTION_USERS = 16     # rows of the attention images
PR_THRESHOLDS = 201
PROJECTOR = 'projector'
ATTENTION = 'attention'
CHECKPOINT = 'embeddings.ckpt'
EMBEDDINGS_SUFFIX = '/embeddings:0'


def training_callbacks(model: tf.keras.Model, spec: spec_lib.FeatureSpec, log_dir: str,
                       eval_data: tf.data.Dataset) -> List[tf.keras.callbacks.Callback]:
    """The callbacks that write a model's training logs to ``log_dir``: :class:`EpochBoard` first (it adds the
    learning rate to the epoch's logs), then Keras' TensorBoard callback (the scalars)."""
    return [EpochBoard(model, spec, log_dir, eval_data),
            tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch')]


def _ranking(model) -> bool:
    return getattr(model, 'KIND', 'ranking') == 'ranking'


def take_rows(data: tf.data.Dataset, rows: int):
    """The first ``rows`` rows of a dataset of ``(features, labels)`` batches, as one batch of numpy arrays."""
    features, labels, taken = {}, {}, 0
    for batch_features, batch_labels in data:
        for target, batch in ((features, batch_features), (labels, batch_labels)):
            for name, values in batch.items():
                target.setdefault(name, []).append(values.numpy())
        taken += len(next(iter(batch_labels.values())))
        if taken >= rows:
            break
    join = lambda parts: {name: np.concatenate(values)[:rows] for name, values in parts.items()}  # noqa: E731
    return join(features), join(labels)


def head_predictions(model, spec: spec_lib.FeatureSpec, features) -> Dict[str, np.ndarray]:
    """``{served head: [N] probabilities}`` of a ranking model on transformed features (the primary as its name,
    or ``probabilities`` for a single-head model), as the serving signatures calibrate them."""
    from tfx_pipeline import export  # pylint: disable=import-outside-toplevel  # export imports the model zoo
    outputs = export.served(model, model(features, training=False), spec.negative_sampling_rate)
    return {head.name or 'probabilities': outputs[head.name or 'probabilities'].numpy()
            for head in model.served_heads(model.hparams)}


def head_labels(model, spec: spec_lib.FeatureSpec) -> Dict[str, str]:
    """``{served head: the label column it is evaluated against}``."""
    return {head.name or 'probabilities': spec.label_for(head.role) for head in model.served_heads(model.hparams)}


def embedding_tables(model: tf.keras.Model) -> Dict[str, tf.Variable]:
    """``{variable path: embedding table}`` of every ``<…>/<table>/embeddings`` variable of the model."""
    return {v.name[:-2]: v for v in model.weights if v.name.endswith(EMBEDDINGS_SUFFIX) and v.shape.rank == 2}


class EpochBoard(tf.keras.callbacks.Callback):
    """Each epoch: the learning rate into the logs (Keras' callback writes it only for a schedule), histograms of the
    embedding tables and of the predictions on the first :data:`SAMPLE_ROWS` eval rows; at the end, the PR curve of
    the primary head on those rows (once EarlyStopping, a later callback, has restored the best weights, the
    Trainer's :func:`write_after_training` writes it: see there)."""

    def __init__(self, model, spec: spec_lib.FeatureSpec, log_dir: str, eval_data: tf.data.Dataset):
        super().__init__()
        self.spec, self.log_dir, self.eval_data = spec, log_dir, eval_data
        self.ranking = _ranking(model)
        self.sample = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, 'train'))
        if self.ranking:
            self.sample = take_rows(self.eval_data, SAMPLE_ROWS)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs['learning_rate'] = learning_rate(self.model.optimizer)
        with self._writer.as_default(step=epoch):
            for path, table in embedding_tables(self.model).items():
                tf.summary.histogram(f'embeddings/{path.split("/", 1)[-1]}', table)
            if self.sample is not None:
                features, labels = self.sample
                label_of = head_labels(self.model, self.spec)
                for head, values in head_predictions(self.model, self.spec, features).items():
                    tf.summary.histogram(f'predictions/{head}', values)
                    label = labels.get(label_of[head])
                    if label is not None:
                        positive = np.reshape(label, [-1]) > 0.5
                        tf.summary.histogram(f'predictions/{head}/positives', values[positive])
                        tf.summary.histogram(f'predictions/{head}/negatives', values[~positive])
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()


def learning_rate(optimizer) -> float:
    """The optimizer's current learning rate (a schedule's value at the current step)."""
    rate = getattr(optimizer, '_learning_rate', None)
    if rate is None:
        rate = optimizer.learning_rate
    if isinstance(rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    return float(tf.keras.backend.get_value(rate))


def write_after_training(model, spec: spec_lib.FeatureSpec, tft_output, log_dir: str, config, eval_files: Sequence[str],
                         examples: Sequence[bytes], data_format: str) -> None:
    """What is written once the best epoch's weights are back: the PR curve, the projector, the attention images and
    the hparams session (the module's docstring). ``examples``: logged raw test examples (the attention sample);
    without them, the eval split's first rows. A part that fails is logged and skipped: the model is trained."""
    from tfx_pipeline import export, trainer  # pylint: disable=import-outside-toplevel  # they import this module
    sample = None
    if _ranking(model) or not examples:
        sample = take_rows(trainer.input_fn(list(eval_files), tft_output, spec.labels, 1024), SAMPLE_ROWS)
    parts = [('hparams', lambda: write_hparams(log_dir, config, model)),
             ('projector', lambda: write_projector(model, spec, tft_output, os.path.join(log_dir, PROJECTOR)))]
    if _ranking(model):
        parts.append(('PR curve', lambda: write_pr_curve(model, spec, sample, os.path.join(log_dir, 'validation'))))
    features = (export.transform_in_process(tft_output, spec, data_format, examples[:ATTENTION_USERS]) if examples
                else {name: values[:ATTENTION_USERS] for name, values in sample[0].items()})
    parts.append(('attention', lambda: write_attention(model, features, os.path.join(log_dir, ATTENTION),
                                                       'logged test users' if examples else 'eval rows')))
    for name, write in parts:
        try:
            write()
        except Exception:  # pylint: disable=broad-except
            absl.logging.exception('TensorBoard: could not write the %s to %s', name, log_dir)


def write_pr_curve(model, spec: spec_lib.FeatureSpec, sample, log_dir: str) -> None:
    """The primary head's precision-recall curve on ``sample`` (``(features, labels)``) as TensorBoard's PR curve."""
    from tensorboard.plugins.pr_curve import summary as pr_summary  # pylint: disable=import-outside-toplevel
    features, labels = sample
    head, predictions = next(iter(head_predictions(model, spec, features).items()))
    label = np.reshape(labels[head_labels(model, spec)[head]], [-1]) > 0.5
    counts = pr_counts(label, predictions, PR_THRESHOLDS)
    summary = pr_summary.raw_data_pb(f'pr_curve/{head}', *counts, num_thresholds=PR_THRESHOLDS,
                                     description=f'{head} on the first {len(label)} eval rows')
    with tf.summary.create_file_writer(log_dir).as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=0)


def pr_counts(labels: np.ndarray, predictions: np.ndarray, num_thresholds: int):
    """TP, FP, TN, FN, precision, recall at thresholds i / (num_thresholds − 1) (a prediction ≥ the threshold is
    positive), as TensorBoard's PR curve reads them."""
    thresholds = np.linspace(0.0, 1.0, num_thresholds)
    predicted = predictions[np.newaxis, :] >= thresholds[:, np.newaxis]
    tp = (predicted & labels).sum(axis=1).astype(np.float64)
    fp = (predicted & ~labels).sum(axis=1).astype(np.float64)
    fn = labels.sum() - tp
    tn = (~labels).sum() - fp
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / np.maximum(tp + fn, 1.0)
    return tp, fp, tn, fn, precision, recall


def write_projector(model, spec: spec_lib.FeatureSpec, tft_output, log_dir: str) -> Dict[str, int]:
    """The embedding projector for each vocabulary table of the model (the widest variable of that table: a
    first-order weight is one wide). Row 0 is padding, rows 1…V Transform's vocabulary in its file's order
    (label, training-data frequency), then the OOV buckets. Returns ``{table: rows}``."""
    from tensorboard.plugins import projector  # pylint: disable=import-outside-toplevel
    tables = {}
    for path, variable in embedding_tables(model).items():
        table = path.split('/')[-2]
        if table in spec.vocabularies and variable.shape[1] > 1 and (
                table not in tables or variable.shape[1] > tables[table].shape[1]):
            tables[table] = variable
    if not tables:
        return {}
    os.makedirs(log_dir, exist_ok=True)
    checkpoint = tf.train.Checkpoint(**{table: tf.Variable(variable.numpy()) for table, variable in tables.items()})
    # save (not write): the directory's ``checkpoint`` file names it by a relative path, and the config names no
    # checkpoint, so the plugin finds this one wherever the run directory is moved or mounted
    checkpoint.save(os.path.join(log_dir, CHECKPOINT))
    config = projector.ProjectorConfig()
    for table, variable in sorted(tables.items()):
        rows = vocabulary_rows(spec, tft_output, table, variable.shape[0])
        with open(os.path.join(log_dir, f'{table}.tsv'), 'w', encoding='utf-8') as f:
            f.write('label\tfrequency\n')
            f.writelines(f'{_tsv(label)}\t{count}\n' for label, count in rows)
        config.embeddings.add(tensor_name=f'{table}/.ATTRIBUTES/VARIABLE_VALUE', metadata_path=f'{table}.tsv')
    projector.visualize_embeddings(log_dir, config)
    with tf.summary.create_file_writer(log_dir).as_default():   # an event file makes the directory a run
        tf.summary.text('tables', ', '.join(f'{t}: {v.shape[0]} × {v.shape[1]}' for t, v in sorted(tables.items())),
                        step=0)
    return {table: int(variable.shape[0]) for table, variable in tables.items()}


def vocabulary_rows(spec: spec_lib.FeatureSpec, tft_output, table: str, rows: int) -> List[tuple]:
    """``(label, training-data frequency)`` of each of ``rows`` rows of a vocabulary table: ``<padding>``, the
    vocabulary's tokens, ``<oov i>``."""
    path = tft_output.vocabulary_file_by_name(table)
    tokens = resolve.vocabulary_tokens(path)
    counts = resolve.table_frequencies(spec, tft_output).get(table)
    labelled = [('<padding>', 0)] + [(token, int(counts[i + 1]) if counts is not None else 0)
                                     for i, token in enumerate(tokens)]
    labelled += [(f'<oov {i}>', 0) for i in range(rows - len(labelled))]
    return labelled[:rows]


def _tsv(label: str) -> str:
    """A label as one TSV cell (tabs and newlines would split rows), never empty (the projector skips those)."""
    return ' '.join(label.split()) or '<empty>'


ATTENTION_KEYS = ('attention_maps', 'gates')


def attention_outputs(outputs: Dict[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    """The attention-like outputs of a model call: ``attention_maps``, ``gates`` and every ``*_weights`` of rank ≥ 2
    (a per-row weight vector such as DIN's is ``[B, L]``)."""
    return {key: value.numpy() for key, value in sorted(outputs.items())
            if (key in ATTENTION_KEYS or key.endswith('_weights')) and isinstance(value, tf.Tensor)
            and value.dtype.is_floating and value.shape.rank is not None and value.shape.rank >= 2}


def write_attention(model, features, log_dir: str, sample_name: str = 'users') -> List[str]:
    """One heat-map image per attention output of ``model`` on ``features`` (the module's docstring); returns the
    image tags."""
    maps = attention_outputs(model(features, training=False))
    if not maps:
        return []
    tags = []
    with tf.summary.create_file_writer(log_dir).as_default():
        for key, values in maps.items():
            png = heat_map_png(key, values, _axis_labels(model, values), sample_name)
            tf.summary.image(f'attention/{key}', tf.image.decode_png(png)[tf.newaxis], step=0,
                             description=f'{model.name}: {key} {list(values.shape)} on {len(values)} {sample_name}')
            tags.append(f'attention/{key}')
    return tags


def _axis_labels(model, values: np.ndarray) -> Optional[List[str]]:
    """The field names of a field-by-field map (AutoInt's), when the model has them and they fit."""
    names = getattr(getattr(model, 'fields', None), 'field_names', None)
    return list(names) if names is not None and values.ndim == 4 and values.shape[-1] == len(names) else None


def heat_map_png(key: str, values: np.ndarray, labels: Optional[List[str]], sample_name: str) -> bytes:
    """A PNG heat map of one attention output: ``[B, L]`` as sample row × step; ``[B, a, b]`` averaged over the
    sample; ``[B, H, n, n]`` one panel per head, averaged over the sample."""
    from matplotlib import ticker  # pylint: disable=import-outside-toplevel
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import report_figures  # pylint: disable=import-outside-toplevel
    if values.ndim == 2:
        panels = [(values, f'{key}: {sample_name} × step', 'step', sample_name)]
    elif values.ndim == 3:   # gates [B, tasks, experts]; per-head weights [B, heads, steps]
        rows, columns = ('task', 'expert') if key == 'gates' else ('head', 'step')
        panels = [(values.mean(axis=0), f'{key}: mean over {len(values)} {sample_name}', columns, rows)]
    else:
        mean = values.reshape((len(values), -1) + values.shape[-2:]).mean(axis=0)
        panels = [(head, f'{key}: head {h + 1} (mean of {len(values)})', 'key', 'query')
                  for h, head in enumerate(mean)]
    figure = Figure(figsize=(4.5 * len(panels), 4.0), dpi=80)
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (image, title, xlabel, ylabel) in zip(axes[0], panels):
        signed = image.min() < 0 < image.max()   # unnormalised weights (DIN's): diverging colours around 0
        bound = np.abs(image).max() if signed else None
        shown = axis.imshow(image, aspect='auto', interpolation='nearest', cmap='RdBu_r' if signed else 'viridis',
                            vmin=-bound if signed else None, vmax=bound)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        if labels:
            axis.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            axis.set_yticks(range(len(labels)), labels, fontsize=6)
        else:
            axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
            axis.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        figure.colorbar(shown, ax=axis, fraction=0.046)
    figure.tight_layout()
    return report_figures.png(figure)


def hparams_of(config, model) -> Dict[str, object]:
    """The hparams dashboard's values of a trained model: its name, the schedule and its hyper-parameters (a list
    as its text: the dashboard takes numbers, strings and booleans)."""
    values = {'model': config.model, 'learning_rate': config.learning_rate, 'batch_size': config.batch_size,
              'epochs': config.epochs, 'learning_rate_decay': config.learning_rate_decay}
    for name, value in sorted(getattr(model, 'hparams', {}).items()):
        values.setdefault(name, value if isinstance(value, (bool, int, float, str)) else str(value))
    return values


def write_hparams(log_dir: str, config, model) -> None:
    """The hparams session of one trained model (the dashboard reads its metrics from train/ and validation/)."""
    from tensorboard.plugins.hparams import api as hp  # pylint: disable=import-outside-toplevel
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams(hparams_of(config, model), trial_id=config.model)


EVALUATOR_DIR = 'tensorboard'   # runs/<name>/tensorboard/<model>: the Evaluator's per-slice scalars


def log_dirs(run) -> Dict[str, str]:
    """Every TensorBoard directory of a run, as TensorBoard's ``--logdir_spec`` names them: ``<model>`` → the
    latest Trainer's log directory (its ModelRun artifact), ``<model>-evaluator`` → the Evaluator's per-slice
    scalars (:func:`write_evaluation`), in training order. ``run``: the run's directory (``runs/<name>``, holding
    ``metadata.sqlite``) or its :class:`~tfx_pipeline.config.PipelineConfig`.

    Raises:
        FileNotFoundError: no metadata store in the run directory (no pipeline ran there).
    """
    from tfx_pipeline import summary  # pylint: disable=import-outside-toplevel  # summary imports the zoo
    run_dir = os.path.abspath(getattr(run, 'run_dir', run))
    metadata = os.path.join(run_dir, 'metadata.sqlite')
    if not os.path.isfile(metadata):
        raise FileNotFoundError(f'{run_dir}: no metadata.sqlite: not the directory of a pipeline run (runs/<name>)')
    store = summary.open_store(metadata)
    latest = {}
    for artifact in sorted(store.get_artifacts_by_type('ModelRun'), key=lambda a: a.id):
        node = os.path.basename(os.path.dirname(os.path.dirname(artifact.uri)))   # Trainer or Trainer.<model>
        model = node.split('.', 1)[1] if '.' in node else _trained_model(store, artifact)
        latest.pop(model, None)
        latest[model] = artifact.uri
    dirs = {}
    for model, uri in latest.items():
        dirs[model] = uri
        evaluator = os.path.join(run_dir, EVALUATOR_DIR, model)
        if os.path.isdir(evaluator):
            dirs[f'{model}-evaluator'] = evaluator
    return dirs


def _trained_model(store, artifact) -> str:
    """The model a single-model run's Trainer trained (its ``custom_config``), ``model`` when it cannot be read."""
    import json  # pylint: disable=import-outside-toplevel
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel
    for event in store.get_events_by_artifact_ids([artifact.id]):
        if event.type == metadata_store_pb2.Event.OUTPUT:
            for execution in store.get_executions_by_id([event.execution_id]):
                custom = execution.properties.get('custom_config') or execution.custom_properties.get('custom_config')
                if custom is not None and custom.string_value:
                    try:
                        return json.loads(custom.string_value)['training']['model']
                    except (ValueError, KeyError, TypeError):
                        pass
    return 'model'


def tensorboard_command(dirs: Dict[str, str]) -> str:
    """The ``tensorboard`` command line that opens ``dirs`` (:func:`log_dirs`) together."""
    import shlex  # pylint: disable=import-outside-toplevel
    return 'tensorboard --logdir_spec ' + shlex.quote(','.join(f'{name}:{path}' for name, path in dirs.items()))


def write_evaluation(config) -> Dict[str, str]:
    """The Evaluator's latest metrics of each model of the run as scalars in ``runs/<name>/tensorboard/<model>``:
    ``<metric>/<slice>`` (``auc/overall``, ``auc/position=3``, ``cvr_auc/click=1``, … as
    :func:`tfx_pipeline.evaluation.slice_metrics` names them; a retrieval model's full-ranking metrics under
    ``overall``), at step = the evaluation's artifact id, so that the runs of one pipeline line up as a series.
    Returns ``{model: directory}`` of the models written."""
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import evaluation, retrieval_evaluation, summary  # pylint: disable=import-outside-toplevel
    store = summary.open_store(config.metadata_path)
    written = {}
    for model in config.training.models:
        artifact = summary.latest_artifact(store, 'ModelEvaluation', config.node_id('Evaluator', model))
        if artifact is None:
            continue
        if registry.kind(model) == registry.RETRIEVAL:
            slices = {evaluation.OVERALL: {name: float(value) for name, value in
                                           retrieval_evaluation.read_metrics(artifact.uri).items()
                                           if isinstance(value, (int, float)) and not isinstance(value, bool)}}
        else:
            slices = evaluation.slice_metrics(artifact.uri, registry.heads(model, dict(config.training.hparams)))
        directory = os.path.join(config.run_dir, EVALUATOR_DIR, model)
        writer = tf.summary.create_file_writer(directory)
        with writer.as_default(step=artifact.id):
            for label, metrics in slices.items():
                for name, value in metrics.items():
                    tf.summary.scalar(f'{name}/{label}', value)
        writer.close()
        written[model] = directory
    return written

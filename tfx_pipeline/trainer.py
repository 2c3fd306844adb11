"""The Trainer: one generic ``run_fn`` for every registered model.

The model is chosen by name from :mod:`rec_models.registry` and built from the feature spec resolved against
Transform's output; its hyper-parameters and the training schedule come from the pipeline config (passed as the
Trainer's ``custom_config``). Training logs go to TensorBoard; early stopping watches the eval AUC of the
primary head (or ``training.early_stopping_metric``) and keeps the best epoch's weights.
The trained model is exported by :mod:`tfx_pipeline.export` (signatures, warmup requests); logged test examples,
when the data is TFRecord, become the warmup requests and a sample of in-process predictions to check the export
against.
"""

import os
from typing import List, Optional, Sequence, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import absl.logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
import tensorflow_transform as tft  # pylint: disable=wrong-import-position

from feature_spec import resolve  # pylint: disable=wrong-import-position
from feature_spec import spec as spec_lib  # pylint: disable=wrong-import-position
from rec_models import registry  # pylint: disable=wrong-import-position
from tfx_pipeline import board  # pylint: disable=wrong-import-position
from tfx_pipeline import catalogue  # pylint: disable=wrong-import-position
from tfx_pipeline import console  # pylint: disable=wrong-import-position
from tfx_pipeline import distribute  # pylint: disable=wrong-import-position
from tfx_pipeline import export  # pylint: disable=wrong-import-position
from tfx_pipeline import retrieval_export  # pylint: disable=wrong-import-position
from tfx_pipeline.config import TrainingConfig  # pylint: disable=wrong-import-position

SAMPLE_COUNT = 256


def input_fn(file_patterns: List[str], tft_output: tft.TFTransformOutput, labels, batch_size: int,
             shuffle_buffer: int = 0, seed: Optional[int] = None, positives_of: Optional[str] = None,
             shard: Optional[Tuple[int, int]] = None) -> tf.data.Dataset:
    """Batches of ``(transformed features, {label: [B] float32})`` from Transform's gzipped tf.Examples.

    Logs are written in time order, so training shuffles records through a buffer of ``shuffle_buffer`` records
    (serialized, before parsing); a buffer much smaller than the data leaves each batch from a narrow time window.
    With ``positives_of`` (a label), only the rows where that label is 1 are kept, in full batches (a retrieval
    model learns from positives). ``shard``: ``(shards, index)``, only every ``shards``-th record from ``index`` (a
    worker's part under ParameterServerStrategy), taken before the shuffle.
    """
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f'no transformed examples match {file_patterns}')
    feature_spec = tft_output.transformed_feature_spec()
    dataset = tf.data.TFRecordDataset(files, compression_type='GZIP', num_parallel_reads=tf.data.AUTOTUNE)
    if shard:
        dataset = dataset.shard(*shard)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(lambda x: tf.io.parse_example(x, feature_spec),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    if positives_of:
        dataset = dataset.map(lambda features: {name: tf.boolean_mask(values, tf.reshape(
            features[positives_of], [-1]) > 0.5) for name, values in features.items()}).unbatch().batch(batch_size)
    return dataset.map(lambda features: (features, {name: features.pop(name) for name in labels})
                       ).prefetch(tf.data.AUTOTUNE)


def build_model(spec: spec_lib.FeatureSpec, tft_output: tft.TFTransformOutput, config: TrainingConfig):
    """The registered model ``config.model``, sized from Transform's vocabularies."""
    inputs = resolve.model_inputs_from(spec, tft_output)
    model = registry.build(config.model, inputs, config.hparams, frequencies=resolve.table_frequencies(spec, tft_output))
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=config.learning_rate))
    return model


def train(spec: spec_lib.FeatureSpec, tft_output: tft.TFTransformOutput, train_files: List[str],
          eval_files: List[str], config: TrainingConfig, log_dir: Optional[str] = None,
          callbacks: Sequence[tf.keras.callbacks.Callback] = (), strategy: Optional[tf.distribute.Strategy] = None,
          chief: bool = True):
    """Trains ``config.model``; returns the model (best epoch's weights by eval AUC) and the Keras history.

    ``strategy``: None (or the default strategy) trains in this process; a MultiWorkerMirroredStrategy
    (:func:`tfx_pipeline.distribute.strategy_from_tf_config`) builds and compiles the model in its scope and trains
    on every worker at once, ``config.batch_size`` being the global batch (:mod:`tfx_pipeline.distribute` says how
    the data is split). Only the ``chief`` shows the epochs' progress on the console. A ParameterServerStrategy (on
    the chief, the coordinator) builds the model in its scope (the variables on the ``ps`` tasks) and fits over
    :func:`tfx_pipeline.distribute.parameter_server_data` for ``steps_per_epoch`` steps, with epoch-level progress and
    loss check (Keras refuses batch-level callbacks under it; :mod:`tfx_pipeline.distribute` says what differs).
    """
    tf.keras.utils.set_random_seed(config.seed)   # on every worker: the same shuffle of the training data
    distributed = distribute.is_distributed(strategy)
    parameter_servers = distribute.is_parameter_server(strategy)
    if distributed or parameter_servers:
        _check_distributable(config, strategy)
    with distribute.synchronised_state(strategy):   # under a strategy: its variables, mirrored on every worker
        model = build_model(spec, tft_output, config)
    labels = spec.labels
    positives_of = None
    if registry.kind(config.model) == registry.RETRIEVAL:
        positives_of = model.model_inputs.label
        summary = catalogue.build(model, train_files, tft_output, positives_of)
        absl.logging.info('Trainer: catalogue of %s', summary)
    train_data = input_fn(train_files, tft_output, labels, config.batch_size, config.shuffle_buffer, config.seed,
                          positives_of)
    eval_data = input_fn(eval_files, tft_output, labels, config.batch_size, positives_of=positives_of)
    if distributed:
        train_data, eval_data = (distribute.for_workers(data, strategy) for data in (train_data, eval_data))
        model.distribute_reduction_method = 'first'   # a step's logs: the all-reduced metrics, not their sum
    fit_data = {'x': train_data, 'validation_data': eval_data}
    rows = None if positives_of else console.current().rows.get('train')
    if parameter_servers:   # no positives_of: retrieval models train in one process only (_check_distributable)
        rows = distribute.count_records(train_files)
        fit_data = {
            'x': distribute.parameter_server_data(lambda shard: input_fn(
                train_files, tft_output, labels, config.batch_size, config.shuffle_buffer, config.seed, shard=shard)),
            'steps_per_epoch': distribute.steps_over(rows, config.batch_size),
            'validation_data': distribute.parameter_server_data(lambda shard: input_fn(
                eval_files, tft_output, labels, config.batch_size, shard=shard)),
            'validation_steps': distribute.steps_over(distribute.count_records(eval_files), config.batch_size)}
    watched = early_stopping_metric(model, config)
    progress, guard = (EpochOnlyProgress, EpochLossGuard) if parameter_servers else (EpochProgress, NonFiniteLossGuard)
    callbacks = [tf.keras.callbacks.EarlyStopping(monitor=f'val_{watched}', restore_best_weights=True,
                                                  mode='min' if lower_is_better(watched) else 'max',
                                                  patience=config.early_stopping_patience),
                 *([progress(config.epochs, config.batch_size, watched, rows=rows)] if chief else []),
                 guard(), *callbacks]
    if config.learning_rate_decay != 1.0:
        callbacks.append(tf.keras.callbacks.LearningRateScheduler(
            lambda epoch: config.learning_rate * config.learning_rate_decay ** epoch))
    if log_dir:
        callbacks = board.training_callbacks(model, spec, log_dir, eval_data) + callbacks  # first: adds the LR
    with distribute.synchronised_state(strategy):   # optimizer slots and layer state built in the first step
        history = model.fit(**fit_data, epochs=config.epochs, callbacks=callbacks, verbose=0)
    return model, history


def _check_distributable(config: TrainingConfig, strategy: tf.distribute.Strategy) -> None:
    """NotImplementedError naming TF_CONFIG for a retrieval model (its in-batch negatives would come from each
    worker's part of the batch only: another model than one process trains); ValueError naming
    ``training.batch_size`` when it does not split evenly over the workers."""
    if registry.kind(config.model) == registry.RETRIEVAL:
        raise NotImplementedError(
            f'{distribute.TF_CONFIG} names a cluster, and retrieval model {config.model!r} trains in one process only: '
            'on several workers each would draw its in-batch negatives from its part of the batch. Unset '
            f'{distribute.TF_CONFIG} to train it.')
    distribute.check_batch_size(config.batch_size, strategy)


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of ``metric`` is better (a loss or an error), as early stopping reads it."""
    return metric.endswith(('loss', 'mse'))


def early_stopping_metric(model, config: TrainingConfig) -> str:
    """The metric early stopping watches (``training.early_stopping_metric``, default the primary head's AUC);
    ValueError naming the setting when the model reports no such metric."""
    watched = config.early_stopping_metric or model.primary_metric
    reported = [metric.name for metric in model.metrics]
    if watched not in reported:
        raise ValueError(f'training.early_stopping_metric: model {config.model!r} reports no metric {watched!r}; it '
                         f'reports {reported}')
    return watched


class NonFiniteLossGuard(tf.keras.callbacks.Callback):
    """Stops training at the first step whose loss is NaN or infinite, with FloatingPointError naming the epoch and
    step (Keras would go on and the Trainer report success, leaving the Evaluator to fail on NaN scores)."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f'step {batch + 1}')

    def _check(self, logs, where: str) -> None:
        loss = (logs or {}).get('loss')
        if loss is not None and not np.isfinite(loss):
            self.model.stop_training = True
            raise FloatingPointError(
                f'training loss is {loss} at epoch {self.epoch + 1}, {where}: training stopped. Look for '
                'NaN or infinite values in the numeric inputs (ExampleValidator\'s statistics), or lower '
                'training.learning_rate.')


class EpochLossGuard(NonFiniteLossGuard):
    """:class:`NonFiniteLossGuard` on the epoch's mean loss, under ParameterServerStrategy (which refuses batch-level
    callbacks): a NaN step makes the epoch's mean NaN, found at the epoch's end."""
    on_train_batch_end = tf.keras.callbacks.Callback.on_train_batch_end   # Keras' default: no batch hook

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, 'its end')


class EpochProgress(tf.keras.callbacks.Callback):
    """A progress bar per epoch on the console (examples/s, ETA), a line per epoch with the watched metric in the
    log and on the console, and the Trainer's figure (epochs run, the best epoch's watched metric).

    The first epoch's total is ``rows`` (the train split's rows, when StatisticsGen counted them); later epochs'
    is the first epoch's count."""

    def __init__(self, epochs: int, batch_size: int, watched: str, rows: Optional[int] = None):
        super().__init__()
        self.epochs, self.batch_size, self.watched, self.total = epochs, batch_size, watched, rows
        self.best: Optional[tuple] = None
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._bar = console.current().bar(f'epoch {epoch + 1}/{self.epochs}', self.total)

    def on_train_batch_end(self, batch, logs=None):
        self._bar.update(min((batch + 1) * self.batch_size, self.total or (batch + 1) * self.batch_size))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = ' '.join(f'{k}={v:.5f}' for k, v in sorted(logs.items()))
        absl.logging.info('Trainer epoch %d: %s', epoch + 1, figures)
        self.total = self._bar.done
        shown = {k: logs[k] for k in (self.watched, f'val_{self.watched}', 'loss', 'val_loss') if k in logs}
        self._bar.close(': ' + ' '.join(f'{k} {v:.4f}' for k, v in shown.items()))
        value = logs.get(f'val_{self.watched}')
        if value is not None and (self.best is None or (value < self.best[1] if lower_is_better(self.watched)
                                                        else value > self.best[1])):
            self.best = (epoch + 1, value)
        done = f'{epoch + 1} epochs'
        console.current().report(done if self.best is None else
                                 f'{done}, best val_{self.watched} {self.best[1]:.4f} (epoch {self.best[0]})')


class EpochOnlyProgress(EpochProgress):
    """:class:`EpochProgress` without batch hooks (ParameterServerStrategy refuses them): the bar goes from 0 to the
    epoch's rows at the epoch's end."""
    on_train_batch_end = tf.keras.callbacks.Callback.on_train_batch_end   # Keras' default: no batch hook

    def on_epoch_end(self, epoch, logs=None):
        if self.total:
            self._bar.update(self.total)
        super().on_epoch_end(epoch, logs)


def _item_feed(custom_config) -> Optional[str]:
    """The item feed's pattern: None without one, or when the synthetic generator's optional table is absent (data
    generated before it wrote one)."""
    feed = custom_config.get('item_feed')
    if feed and not custom_config.get('item_feed_required') and not tf.io.gfile.glob(feed):
        console.current().line(f'no item feed at {feed}: the index holds the vocabulary\'s items only')
        return None
    return feed


def run_fn(fn_args):
    """TFX Trainer entry point (GenericExecutor); returns the trained model (TFX ignores it; a test reads it).

    With a cluster in ``TF_CONFIG`` (:mod:`tfx_pipeline.distribute`), every worker trains and exports; only the
    chief's SavedModel (``serving_model_dir``), TensorBoard logs and sample predictions (``model_run_dir``) stay, the
    others write theirs to scratch directories that are deleted, and only the chief shows the console's progress.
    With ``ps`` tasks (ParameterServerStrategy), only the chief trains and writes; a ``worker`` or ``ps`` task runs
    its server and blocks here for good: the cluster launcher ends it when the chief ends (a script must kill it).
    """
    if distribute.runs_server(distribute.read_tf_config()):
        distribute.serve()   # never returns
        return None
    strategy = distribute.strategy_from_tf_config()   # first: it starts this task's server and its collectives
    chief = distribute.is_chief()
    with distribute.worker_dir(fn_args.model_run_dir, chief) as run_dir, \
            distribute.worker_dir(fn_args.serving_model_dir, chief) as serving_dir:
        return _train_and_export(fn_args, run_dir, serving_dir, strategy, chief)


def _train_and_export(fn_args, run_dir: str, serving_dir: str, strategy: tf.distribute.Strategy, chief: bool):
    """``run_fn``'s work: logs and sample predictions under ``run_dir``, the SavedModel in ``serving_dir``."""
    config = TrainingConfig.from_dict(fn_args.custom_config['training'])
    spec = spec_lib.load(fn_args.custom_config['feature_spec'])
    data_format = fn_args.custom_config['data_format']
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    model, _ = train(spec, tft_output, fn_args.train_files, fn_args.eval_files, config, log_dir=run_dir,
                     strategy=strategy, chief=chief)
    sample = fn_args.custom_config.get('sample_examples')
    examples = export.read_examples(sample, SAMPLE_COUNT, spec, data_format) if sample else []
    board.write_after_training(model, spec, tft_output, run_dir, config, fn_args.eval_files,
                               examples, data_format)
    if registry.kind(config.model) == registry.RETRIEVAL:
        serving = retrieval_export.export_retrieval_model(
            model, tft_output, spec, data_format, serving_dir, warmup_examples=examples,
            train_pattern=fn_args.custom_config.get('train_examples'), item_feed=_item_feed(fn_args.custom_config))
        if examples:
            popularity = None if serving.popularity is None else serving.popularity.numpy()
            retrieval_export.write_sample_retrievals(model, tft_output, spec, data_format, examples,
                                                     run_dir, popularity=popularity,
                                                     new_items=serving.new_items)
        return model
    export.export_serving_model(model, tft_output, spec, data_format, serving_dir,
                                warmup_examples=examples)
    if examples:
        export.write_sample_predictions(model, tft_output, spec, data_format, examples, run_dir)
    return model

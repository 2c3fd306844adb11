"""Train and score models on a synthetic data set without a whole pipeline: for benchmarks and model tests.

The same pieces the pipeline runs — the spec's Transform (on Beam's DirectRunner), the Trainer's ``train`` and
the exported serving path — on data written by the generator:

    prepared = prepare(data.PRESETS['small'], workdir)
    figures = fit_and_score(prepared, TrainingConfig(model='din', epochs=2))

or on an importer's output (:mod:`tfx_pipeline.importers`: ``<data_dir>/tfrecord/<split>/``, its feature spec and
``metadata.json``), transformed into ``workdir``:

    prepared = prepare_imported('data/frappe', workdir)

Scores are computed on the raw test split through the serving path (parse → Transform graph → model), so
the predictions line up with the raw rows, whose user ids give the GAUC.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models import metrics
from serving import signatures
from tfx_pipeline import data
from tfx_pipeline import export
from tfx_pipeline import retrieval_evaluation
from tfx_pipeline import retrieval_export
from tfx_pipeline import summary
from tfx_pipeline import trainer
from tfx_pipeline.config import SPLITS, TrainingConfig
from tfx_pipeline.importers import common as importers_common
from tfx_pipeline.local_transform import TRANSFORM_OUTPUT, TRANSFORMED, run_transform

SPEC_USED = 'feature_spec.yaml'  # the spec a workdir's Transform output was made with
DEFAULT_SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            'feature_spec', 'specs', 'synthetic.yaml')


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A generated data set, written and transformed."""
    spec: spec_lib.FeatureSpec
    tft_output: tft.TFTransformOutput
    transformed: Dict[str, str]      # split → transformed file pattern
    raw: Dict[str, str]              # split → raw TFRecord file pattern
    metadata: Dict[str, Any]         # the generator's metadata (bayes_auc, …)
    test_columns: Dict[str, np.ndarray]  # raw test labels and groups, in file order


def prepare(generator_config: data.GeneratorConfig, workdir: str, spec_path: str = DEFAULT_SPEC) -> Prepared:
    """Generates, writes (TFRecord) and transforms a data set under ``workdir``.

    A workdir that already holds this very data set (same generator config) is reused as it is, and so is its
    Transform output when it was made with this very spec (the spec file's text is kept beside it).
    """
    spec = spec_lib.load(spec_path)
    data_dir = os.path.join(workdir, 'data')
    raw = {split: os.path.join(data_dir, schema_lib.TFRECORD, split, '*') for split in SPLITS}
    transform_dir = os.path.join(workdir, 'transform')
    metadata = summary.data_metadata(data_dir)
    transformed = {split: os.path.join(transform_dir, TRANSFORMED, split, 'part*') for split in SPLITS}
    if metadata.get('config') != dataclasses.asdict(generator_config):
        metadata = data.generate_and_write(generator_config, data_dir, formats=(schema_lib.TFRECORD,),
                                           num_shards=1)
        shutil.rmtree(transform_dir, ignore_errors=True)
    transformed = _transform_once(spec, raw, transform_dir, {SPEC_USED: _text(spec_path)}) or transformed
    tft_output = tft.TFTransformOutput(os.path.join(workdir, 'transform', TRANSFORM_OUTPUT))
    return Prepared(spec, tft_output, transformed, raw, metadata, _test_columns(spec, raw['test']))


def _transform_once(spec: spec_lib.FeatureSpec, raw: Dict[str, str], transform_dir: str,
                    made_from: Dict[str, Optional[str]]) -> Optional[Dict[str, str]]:
    """Runs Transform into ``transform_dir`` unless its output there was made from the same inputs: ``made_from``
    maps a file name kept beside the output to the text it must hold (the spec's, the importer's metadata).
    Returns the transformed file patterns when it ran, None when the output was reused."""
    if os.path.exists(os.path.join(transform_dir, TRANSFORM_OUTPUT)) and all(
            _text(os.path.join(transform_dir, name)) == text for name, text in made_from.items()):
        return None
    shutil.rmtree(transform_dir, ignore_errors=True)
    transformed = run_transform(spec, raw, transform_dir)
    for name, text in made_from.items():
        with open(os.path.join(transform_dir, name), 'w') as f:
            f.write(text)
    return transformed


IMPORTED_METADATA = 'imported_metadata.json'  # the importer's metadata a workdir's Transform output was made from


def prepare_imported(data_dir: str, workdir: str, spec_path: Optional[str] = None) -> Prepared:
    """Transforms an importer's output directory (:mod:`tfx_pipeline.importers`: ``<data_dir>/tfrecord/<split>/``,
    ``<data_dir>/feature_spec.yaml``, ``<data_dir>/metadata.json``) into ``workdir/transform`` and returns it as
    :func:`prepare` does. ``spec_path``: another spec for the same columns (default: the importer's).

    The Transform output is reused when it was made with this very spec and from this very import (the importer's
    metadata, which names the source, the split and the row counts, is kept beside it). Imported data has no Bayes
    AUC: the metadata has no ``bayes_auc`` and :func:`fit_and_score` reports ``fraction_of_ceiling`` None.

    Raises:
        FileNotFoundError: ``data_dir`` lacks a split, the spec or ``metadata.json``.
    """
    spec_path = spec_path or os.path.join(data_dir, importers_common.SPEC_FILE)
    metadata_path = os.path.join(data_dir, summary.DATA_METADATA)
    raw = {split: os.path.join(data_dir, schema_lib.TFRECORD, split, '*') for split in SPLITS}
    missing = [path for path in (spec_path, metadata_path) if not os.path.isfile(path)]
    missing += [pattern for pattern in raw.values() if not tf.io.gfile.glob(pattern)]
    if missing:
        raise FileNotFoundError(f'{data_dir} is not an importer\'s output (python -m tfx_pipeline.importers): no '
                                f'{", ".join(missing)}')
    spec = spec_lib.load(spec_path)
    metadata = summary.data_metadata(data_dir)
    transform_dir = os.path.join(workdir, 'transform')
    transformed = {split: os.path.join(transform_dir, TRANSFORMED, split, 'part*') for split in SPLITS}
    made_from = {SPEC_USED: _text(spec_path), IMPORTED_METADATA: _text(metadata_path)}
    transformed = _transform_once(spec, raw, transform_dir, made_from) or transformed
    tft_output = tft.TFTransformOutput(os.path.join(transform_dir, TRANSFORM_OUTPUT))
    return Prepared(spec, tft_output, transformed, raw, metadata, _test_columns(spec, raw['test']))


def _text(path: str) -> Optional[str]:
    """The text of a file, None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def _test_columns(spec: spec_lib.FeatureSpec, pattern: str) -> Dict[str, np.ndarray]:
    """The raw test split's labels, label-role columns (ground truth included) and grouping keys, in file order."""
    names = [*spec.labels, *spec.label_roles.values(), spec.gauc_group, spec.request_group]
    dtypes = {c.source: c.dtype for c in spec.columns}
    types = {'float32': tf.float32, 'string': tf.string}
    parsing = {name: tf.io.FixedLenFeature([], types.get(dtypes.get(name), tf.int64))
               for name in dict.fromkeys(names) if name}
    columns = {name: [] for name in parsing}
    for batch in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(8192):
        for name, values in tf.io.parse_example(batch, parsing).items():
            columns[name].append(values.numpy())
    return {name: np.concatenate(values) for name, values in columns.items()}


def predict_raw(serving: export.ServingModel, pattern: str, batch_size: int = 4096) -> Dict[str, np.ndarray]:
    """The serving function's outputs (``probabilities`` and every named head) for every raw example of ``pattern``,
    in file order."""
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(batch_size)
    batches = [{name: values.numpy() for name, values in serving.serve(batch).items()} for batch in records]
    return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}


def predict_transformed(model, prepared: 'Prepared', split: str, output: str, batch_size: int = 4096) -> np.ndarray:
    """The model's ``output`` on the transformed examples of ``split`` (in file order), training-only inputs
    included: what the serving path cannot give, such as a distillation teacher's probabilities."""
    spec = prepared.tft_output.transformed_feature_spec()
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(prepared.transformed[split])), compression_type='GZIP')
    return np.concatenate([tf.reshape(model(tf.io.parse_example(batch, spec), training=False)[output], [-1]).numpy()
                           for batch in records.batch(batch_size)])


def head_figures(spec: spec_lib.FeatureSpec, heads, outputs: Dict[str, np.ndarray],
                 columns: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Every named head's AUC against its label (``<head>_auc``), in its condition's rows too
    (``<head>_auc_given_<role>``), each head's AUC against its counterfactual labels when the data has them
    (``<role>_auc``: ``relevance_auc``), and the primary head's NDCG per request against the true relevance when the
    spec names it (``ndcg``)."""
    figures = {}
    for head in heads:
        if head.name:
            labels = columns[spec.label_for(head.role)]
            figures[f'{head.name}_auc'] = metrics.auc(labels, outputs[head.output])
            if head.condition:
                rows = columns[spec.label_for(head.condition)] > 0.5
                figures[f'{head.name}_auc_given_{head.condition}'] = metrics.auc(labels[rows],
                                                                                 outputs[head.output][rows])
        if head.counterfactual in spec.roles:
            figures[f'{head.counterfactual}_auc'] = metrics.auc(columns[spec.label_for(head.counterfactual)],
                                                               outputs[head.output])
    if 'true_relevance' in spec.roles and spec.request_group:
        figures['ndcg'] = metrics.ndcg(columns[spec.label_for('true_relevance')], outputs[signatures.PROBABILITIES],
                                       columns[spec.request_group])
    return {name: round(value, 5) for name, value in figures.items()}


class TrainingTimer(tf.keras.callbacks.Callback):
    """Seconds spent in training passes: from each epoch's start to its validation's start."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


def fit_and_score(prepared: Prepared, config: TrainingConfig, export_dir: Optional[str] = None,
                  extra: Optional[Callable[[tf.keras.Model], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Trains ``config.model`` and scores it on the raw test split; with ``export_dir``, exports it there as the
    Trainer does (a SavedModel with every serving signature).

    Returns model, test_auc, gauc (None when the spec has no ``gauc_group``), logloss, bayes_auc and
    fraction_of_ceiling (None when the data has no Bayes AUC: imported data), examples_per_s (training examples per
    second of ``fit``, validation included), params, epochs run, train rows and :func:`head_figures`, and what
    ``extra(trained model)`` adds.
    """
    timer = TrainingTimer()
    model, history = trainer.train(prepared.spec, prepared.tft_output, [prepared.transformed['train']],
                                   [prepared.transformed['eval']], config, callbacks=[timer])
    epochs = len(history.history['loss'])
    if export_dir:
        serving = export.export_serving_model(model, prepared.tft_output, prepared.spec, schema_lib.TFRECORD,
                                              export_dir)
    else:
        serving = export.ServingModel(model, prepared.tft_output, prepared.spec, schema_lib.TFRECORD)
    outputs = predict_raw(serving, prepared.raw['test'])
    predictions = outputs[signatures.PROBABILITIES]
    labels = prepared.test_columns[prepared.spec.labels[0]]
    test_auc = metrics.auc(labels, predictions)
    bayes_auc = prepared.metadata.get('bayes_auc')  # None: imported data, whose ceiling nobody knows
    group = prepared.spec.gauc_group
    clipped = np.clip(predictions, 1e-7, 1 - 1e-7)
    train_rows = prepared.metadata['splits']['train']['rows']
    return {
        'model': config.model,
        'test_auc': round(test_auc, 5),
        'gauc': round(metrics.gauc(labels, predictions, prepared.test_columns[group]), 5) if group else None,
        'logloss': round(float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))), 5),
        'bayes_auc': round(bayes_auc, 5) if bayes_auc is not None else None,
        'fraction_of_ceiling': (round(metrics.fraction_of_ceiling(test_auc, bayes_auc), 4) if bayes_auc is not None
                                else None),
        'examples_per_s': round(epochs * train_rows / timer.seconds, 1),
        'params': int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        'epochs': epochs,
        'train_rows': train_rows,
        **head_figures(prepared.spec, model.served_heads(model.hparams), outputs, prepared.test_columns),
        **(extra(model) if extra else {}),
    }


def retrieval_test_data(prepared: Prepared):
    """``(test positives, {raw item id: training positives}, {users with a training positive})`` for
    :func:`fit_and_score_retrieval`."""
    examples = retrieval_evaluation.read_positives(prepared.raw['test'], prepared.spec, schema_lib.TFRECORD)
    train = retrieval_evaluation.read_positives(prepared.raw['train'], prepared.spec, schema_lib.TFRECORD, rows=None)
    return examples, retrieval_evaluation.popularity(train, prepared.spec), retrieval_evaluation.users(train,
                                                                                                      prepared.spec)


def fit_and_score_retrieval(prepared: Prepared, config: TrainingConfig, test_data=None,
                            export_dir: Optional[str] = None, item_feed: Optional[str] = None) -> Dict[str, Any]:
    """Trains the retrieval model ``config.model``, exports it (to ``export_dir``, or a temporary directory) and
    scores the SavedModel on the raw test split's clicks as the pipeline's Evaluator does
    (:func:`tfx_pipeline.retrieval_evaluation.evaluate`: full ranking over the item vocabulary, the sampled
    protocols). Returns those metrics, examples_per_s (training positives a second of ``fit``, validation
    included), params, epochs and train_positives. ``test_data``: :func:`retrieval_test_data`, when computed once
    for several models. ``item_feed``: raw files of the item table, whose items outside the vocabulary join the
    index (:func:`tfx_pipeline.retrieval_export.export_retrieval_model`)."""
    timer = TrainingTimer()
    model, history = trainer.train(prepared.spec, prepared.tft_output, [prepared.transformed['train']],
                                   [prepared.transformed['eval']], config, callbacks=[timer])
    epochs = len(history.history['loss'])
    examples, counts, known = test_data or retrieval_test_data(prepared)
    with tempfile.TemporaryDirectory() as scratch:
        directory = export_dir or os.path.join(scratch, 'export')
        retrieval_export.export_retrieval_model(model, prepared.tft_output, prepared.spec, schema_lib.TFRECORD,
                                                directory, item_feed=item_feed)
        figures = retrieval_evaluation.evaluate(tf.saved_model.load(directory), prepared.spec, examples, counts,
                                                train_users=known)
    positives = int(model.catalogue_counts.numpy().sum())
    return {'model': config.model, **figures,
            'examples_per_s': round(epochs * positives / timer.seconds, 1),
            'params': int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            'epochs': epochs, 'train_positives': positives}

"""Train and score models on a synthetic data set without a whole pipeline: for benchmarks and model tests.

The same pieces the pipeline runs — the spec's Transform (on Beam's DirectRunner), the Trainer's ``train`` and
the exported serving path — on data written by the generator:

    prepared = prepare(data.PRESETS['small'], workdir)
    figures = fit_and_score(prepared, TrainingConfig(model='din', epochs=2))

Scores are computed on the raw test split through the serving path (parse → Transform graph → model), so
the predictions line up with the raw rows, whose user ids give the GAUC.
"""

import dataclasses
import os
import shutil
import time
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models import metrics
from serving import signatures
from tfx_pipeline import data
from tfx_pipeline import export
from tfx_pipeline import summary
from tfx_pipeline import trainer
from tfx_pipeline.config import SPLITS, TrainingConfig
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
    spec_text = _text(spec_path)
    used_spec = os.path.join(transform_dir, SPEC_USED)
    if not os.path.exists(os.path.join(transform_dir, TRANSFORM_OUTPUT)) or _text(used_spec) != spec_text:
        shutil.rmtree(transform_dir, ignore_errors=True)
        transformed = run_transform(spec, raw, transform_dir)
        with open(used_spec, 'w') as f:
            f.write(spec_text)
    tft_output = tft.TFTransformOutput(os.path.join(workdir, 'transform', TRANSFORM_OUTPUT))
    return Prepared(spec, tft_output, transformed, raw, metadata, _test_columns(spec, raw['test']))


def _text(path: str) -> Optional[str]:
    """The text of a file, None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def _test_columns(spec: spec_lib.FeatureSpec, pattern: str) -> Dict[str, np.ndarray]:
    parsing = {name: tf.io.FixedLenFeature([], tf.int64) for name in (spec.labels[0], spec.gauc_group) if name}
    columns = {name: [] for name in parsing}
    for batch in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(8192):
        for name, values in tf.io.parse_example(batch, parsing).items():
            columns[name].append(values.numpy())
    return {name: np.concatenate(values) for name, values in columns.items()}


def predict_raw(serving: export.ServingModel, pattern: str, batch_size: int = 4096) -> np.ndarray:
    """The serving function's probabilities for every raw example of ``pattern``, in file order."""
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(batch_size)
    return np.concatenate([serving.serve(batch)[signatures.PROBABILITIES].numpy() for batch in records])


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


def fit_and_score(prepared: Prepared, config: TrainingConfig, export_dir: Optional[str] = None) -> Dict[str, Any]:
    """Trains ``config.model`` and scores it on the raw test split; with ``export_dir``, exports it there as the
    Trainer does (a SavedModel with every serving signature).

    Returns model, test_auc, gauc, logloss, bayes_auc, fraction_of_ceiling, examples_per_s (training examples per
    second of ``fit``, validation included), params, epochs run and train rows.
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
    predictions = predict_raw(serving, prepared.raw['test'])
    labels = prepared.test_columns[prepared.spec.labels[0]]
    test_auc = metrics.auc(labels, predictions)
    bayes_auc = prepared.metadata['bayes_auc']
    clipped = np.clip(predictions, 1e-7, 1 - 1e-7)
    train_rows = prepared.metadata['splits']['train']['rows']
    return {
        'model': config.model,
        'test_auc': round(test_auc, 5),
        'gauc': round(metrics.gauc(labels, predictions, prepared.test_columns[prepared.spec.gauc_group]), 5),
        'logloss': round(float(-np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))), 5),
        'bayes_auc': round(bayes_auc, 5),
        'fraction_of_ceiling': round(metrics.fraction_of_ceiling(test_auc, bayes_auc), 4),
        'examples_per_s': round(epochs * train_rows / timer.seconds, 1),
        'params': int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        'epochs': epochs,
        'train_rows': train_rows,
    }

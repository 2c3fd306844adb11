"""Checks a run before any component starts: the config, the model and its hyper-parameters, the feature spec,
and that the data holds every column the spec reads, with the declared types.

Only the first record of every data file is read here; ExampleValidator then checks every record.
"""

import csv
import os
from typing import Dict, Optional

import tensorflow as tf

from feature_spec import spec as spec_lib
from rec_models import registry
from tfx_pipeline import summary
from tfx_pipeline.config import SPLITS, ConfigError, PipelineConfig

_KINDS = {'int64_list': 'int64', 'float_list': 'float32', 'bytes_list': 'string'}


def validate(config: PipelineConfig, check_data: bool = True) -> spec_lib.FeatureSpec:
    """Returns the loaded feature spec; raises ConfigError or SpecError naming what is wrong. ``check_data=False``:
    the models and the spec only (a compiled pipeline's data is in a bucket this machine does not read)."""
    for model in config.training.models:
        try:
            registry.validate(model, dict(config.training.hparams))
        except ValueError as e:
            raise ConfigError(f'config: training: {e}') from e
    spec = spec_lib.load(config.feature_spec)
    secondary = set()
    for model in config.training.models:
        heads = registry.heads(model, dict(config.training.hparams))
        for head in heads:
            for role in (head.role, head.condition):
                if role is not None:
                    spec.label_for(role)
        secondary.update(h.name for h in heads[1:])
    unknown = sorted(set(config.evaluation.head_floors) - secondary)
    if unknown:
        raise ConfigError(f'config: evaluation.head_floors: no model of the run serves {unknown} besides its primary '
                          f'head (their other heads: {sorted(secondary)})')
    if not check_data:
        return spec
    generated = summary.data_metadata(config.data.path).get('config')   # the synthetic generator's settings
    sampled = generated.get('negative_sampling_rate', 1.0) if generated else spec.negative_sampling_rate
    if sampled != spec.negative_sampling_rate:
        raise ConfigError(f'config: data.path: the training data kept its negatives at rate {sampled} '
                          f'({config.data.path}/{summary.DATA_METADATA}) but the feature spec {config.feature_spec} '
                          f'says negative_sampling_rate: {spec.negative_sampling_rate}; the served scores would be '
                          'miscalibrated')
    for split in SPLITS:
        directory = config.data.split_dir(split)
        files = sorted(tf.io.gfile.glob(os.path.join(directory, '*')))
        if not files:
            raise ConfigError(f'config: data.path: no {config.data.format} files for split {split!r} in {directory}')
        for path in files:
            spec_lib.check_columns(spec, first_record_columns(path, config.data.format), path)
    return spec


def first_record_columns(path: str, data_format: str) -> Dict[str, Optional[str]]:
    """Column name → value type ('int64', 'float32', 'string'; None if unknown) of a file's first record."""
    if data_format == 'csv':
        with open(path, newline='') as f:
            reader = csv.reader(f)
            header = next(reader, [])
            row = next(reader, [''] * len(header))
        return {name: _csv_type(value) for name, value in zip(header, row)}
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        return {name: _KINDS.get(feature.WhichOneof('kind')) for name, feature in example.features.feature.items()}
    return {}


def _csv_type(value: str) -> Optional[str]:
    if value == '':
        return None
    for cast, name in ((int, 'int64'), (float, 'float32')):
        try:
            cast(value)
            return name
        except ValueError:
            pass
    return 'string'

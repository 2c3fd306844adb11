"""The raw data's parsing spec and TFMD schema, generated from the feature spec.

The pipeline validates the data against this schema (ExampleValidator), so a column the spec reads that is
missing, or holds values of another type, is reported by name. Scalars are required (FixedLenFeature); list
columns are VarLenFeature. In CSV, lists are space-separated strings, so a list column is a string there.
"""

from typing import Dict

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils

from feature_spec import spec as spec_lib

TFRECORD = 'tfrecord'
CSV = 'csv'
FORMATS = (TFRECORD, CSV)
_TF_DTYPES = {'int64': tf.int64, 'float32': tf.float32, 'string': tf.string}


def raw_feature_spec(spec: spec_lib.FeatureSpec, data_format: str = TFRECORD) -> Dict[str, object]:
    """Parsing spec of every raw column the spec reads."""
    if data_format not in FORMATS:
        raise ValueError(f'unknown data format {data_format!r}; known: {", ".join(FORMATS)}')
    parsing = {}
    for name in spec.raw_columns:
        column = next(c for c in spec.columns if c.source == name or _is_reference(c, name))
        sequence = column.sequence and column.source == name
        dtype = _TF_DTYPES[column.dtype]
        if sequence:  # CSV: one space-separated string, absent when the list is empty
            parsing[name] = tf.io.VarLenFeature(tf.string if data_format == CSV else dtype)
        else:
            parsing[name] = tf.io.FixedLenFeature([], dtype)
    return parsing


def serving_feature_spec(spec: spec_lib.FeatureSpec, data_format: str = TFRECORD) -> Dict[str, object]:
    """Parsing spec of the raw columns a served model receives (no labels, positions, weights or truth)."""
    parsing = raw_feature_spec(spec, data_format)
    return {name: parsing[name] for name in spec.serving_columns}


def schema(spec: spec_lib.FeatureSpec, data_format: str = TFRECORD) -> schema_pb2.Schema:
    """TFMD schema of the raw data: required scalars, list columns, each with the spec's type; labels in {0, 1};
    float columns finite (ExampleValidator reports a NaN or an infinity, which would make the loss NaN)."""
    result = schema_utils.schema_from_feature_spec(raw_feature_spec(spec, data_format))
    labels = {c.source for c in spec.of_kind(spec_lib.LABEL)}
    for feature in result.feature:
        if feature.name in labels and feature.type == schema_pb2.INT:
            feature.int_domain.min = 0
            feature.int_domain.max = 1
        elif feature.type == schema_pb2.FLOAT:
            feature.float_domain.disallow_nan = True
            feature.float_domain.disallow_inf = True
    return result


def _is_reference(column: spec_lib.Column, name: str) -> bool:
    return column.transform is not None and column.transform.type == 'time_gap' and \
        column.transform['reference'] == name

"""Resolves a feature spec against Transform's output into the model's inputs.

Embedding tables are sized from the vocabularies Transform computed (vocabulary size + OOV buckets + the
reserved index 0), so no vocabulary size is ever written by hand.
"""

import dataclasses
from typing import Dict

import numpy as np
import tensorflow_transform as tft

from feature_spec import model_inputs
from feature_spec import spec as spec_lib


def model_inputs_from(spec: spec_lib.FeatureSpec, tft_output: tft.TFTransformOutput) -> model_inputs.ModelInputs:
    """The ModelInputs of ``spec`` after Transform wrote ``tft_output``. Positions (training-only) are left out."""
    every = [_field(spec, column, tft_output) for column in spec.features if column.kind != spec_lib.POSITION]
    every = [_with_query(field, every) for field in every]
    fields = [f for f in every if f.group in model_inputs.GROUPS]
    sequences = [f for f in fields if f.kind == model_inputs.SEQUENCE]
    sessions = spec.behavior.sessions if spec.behavior and sequences else None
    return model_inputs.ModelInputs(
        fields=tuple(fields), labels=spec.labels, crosses=spec.crosses,
        sequence_length=spec.behavior.length_feature if sequences else None,
        sessions=model_inputs.SessionInputs(
            fields=tuple(dataclasses.replace(f, name=sessions.feature(f.name), kind=model_inputs.SESSION,
                                             max_length=sessions.max_length) for f in sequences),
            max_sessions=sessions.max_sessions, length_feature=sessions.length_feature) if sessions else None,
        auxiliary=tuple(model_inputs.AuxiliaryInputs(group.name, tuple(f for f in every if f.group == group.name),
                                                     group.length_feature) for group in spec.auxiliary))


def table_size(spec: spec_lib.FeatureSpec, column: spec_lib.Column, tft_output: tft.TFTransformOutput) -> int:
    """Rows of the embedding table of an id column, index 0 included."""
    options = column.transform.options
    kind = column.transform.type
    if kind == 'vocabulary':
        vocabulary = spec.vocabularies[column.vocabulary]
        return tft_output.vocabulary_size_by_name(column.vocabulary) + vocabulary.num_oov_buckets + 1
    if kind == 'hash':
        return options['buckets'] + 1
    if kind == 'bucketize':
        return (len(options['boundaries']) + 2) if options['boundaries'] is not None else options['num_buckets'] + 1
    if kind == 'time_gap':
        return options['num_buckets'] + 1
    raise ValueError(f'column {column.name!r}: transform {kind!r} gives no ids')


def table_frequencies(spec: spec_lib.FeatureSpec, tft_output: tft.TFTransformOutput) -> Dict[str, np.ndarray]:
    """Training-data frequency of every row of each vocabulary table of the model (index 0: 0; OOV rows: 1).

    These are the n_j of the DIN paper's mini-batch-aware regulariser.
    """
    frequencies = {}
    used = {c.vocabulary for c in spec.features if c.vocabulary is not None and c.kind != spec_lib.POSITION}
    for name in sorted(used):
        vocabulary = spec.vocabularies[name]
        path = tft_output.vocabulary_file_by_name(name)
        with open(path, 'rb') as f:
            lines = [line.rstrip(b'\n').split(b' ', 1) for line in f if line.strip()]
        if any(len(fields) != 2 for fields in lines):
            raise ValueError(f'{path} holds no frequencies ("<count> <token>" lines): it was written by another '
                             'version of the Transform; run Transform again')
        counts = [int(fields[0]) for fields in lines]
        table = np.ones(len(counts) + vocabulary.num_oov_buckets + 1, np.float32)
        table[0] = 0.0
        table[1:len(counts) + 1] = counts
        frequencies[name] = table
    return frequencies


def _field(spec, column, tft_output) -> model_inputs.InputField:
    if not column.is_id:
        return model_inputs.InputField(name=column.name, kind=model_inputs.NUMERIC, group=column.group)
    return model_inputs.InputField(
        name=column.name, kind=model_inputs.SEQUENCE if column.sequence else model_inputs.CATEGORICAL,
        group=column.group, table=column.vocabulary or column.name,
        vocab_size=table_size(spec, column, tft_output), embedding_dim=spec.embedding_dim(column),
        max_length=spec.max_length(column) if column.sequence else None)


def _with_query(field, fields) -> model_inputs.InputField:
    """A behaviour sequence's query is the target-item field that shares its embedding table."""
    if field.kind != model_inputs.SEQUENCE:
        return field
    for other in fields:
        if other.kind == model_inputs.CATEGORICAL and other.group == model_inputs.ITEM and other.table == field.table:
            return dataclasses.replace(field, query=other.name)
    return field

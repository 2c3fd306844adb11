"""Resolves a feature spec against Transform's output into the model's inputs.

Embedding tables are sized from the vocabularies Transform computed (vocabulary size + OOV buckets + the
reserved index 0), so no vocabulary size is ever written by hand.
"""

import dataclasses
from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import model_inputs
from feature_spec import spec as spec_lib
from feature_spec import transform


def model_inputs_from(spec: spec_lib.FeatureSpec, tft_output: tft.TFTransformOutput) -> model_inputs.ModelInputs:
    """The ModelInputs of ``spec`` after Transform wrote ``tft_output``. Positions and privileged features are
    training-only inputs (``ModelInputs.training_only``); a position carries its training CTR per id."""
    every = [_field(spec, column, tft_output) for column in spec.features if not column.training_only]
    every = [_with_query(field, every) for field in every]
    training_only = tuple(_training_only_field(spec, column, tft_output)
                          for column in spec.features if column.training_only)
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
                                                     group.length_feature) for group in spec.auxiliary),
        training_only=training_only, label_roles=tuple(sorted(spec.label_roles.items())))


def _training_only_field(spec, column, tft_output) -> model_inputs.InputField:
    """A position or privileged input: grouped by its kind; a position with its label rates and first id."""
    field = dataclasses.replace(_field(spec, column, tft_output), group=column.kind)
    if column.kind != spec_lib.POSITION:
        return field
    rates, first = position_rates(spec, column, tft_output, field.vocab_size)
    return dataclasses.replace(field, label_rates=rates, first_id=first)


def position_rates(spec: spec_lib.FeatureSpec, column: spec_lib.Column, tft_output: tft.TFTransformOutput,
                   rows: int) -> Tuple[Tuple[float, ...], int]:
    """``(rates, first id)`` of a position column: the primary label's mean per position id in the training data, as
    Transform counted them (index 0 and ids never seen: 0), and the id of the first position — the smallest raw value
    for a vocabulary (its tokens read as numbers), id 1 for buckets."""
    counts = _id_frequencies(tft_output.vocabulary_file_by_name(transform.position_count_file(column.name)))
    labels = _id_frequencies(tft_output.vocabulary_file_by_name(transform.position_label_file(column.name)))
    rates = [0.0] * rows
    for position_id, count in counts.items():
        if 0 < position_id < rows and count > 0:
            rates[position_id] = labels.get(position_id, 0.0) / count
    first = 1
    if column.transform.type == 'vocabulary':
        tokens = vocabulary_tokens(tft_output.vocabulary_file_by_name(column.vocabulary))
        try:
            first = 1 + min(range(len(tokens)), key=lambda i: float(tokens[i]))
        except ValueError:
            raise ValueError(f'{spec.path}: columns.{column.name}: the position values {tokens[:5]} are not numbers, '
                             'so the first position is unknown') from None
    return tuple(rates), first


def _id_frequencies(path: str) -> Dict[int, float]:
    """``{id: frequency}`` of a ``<frequency> <id>`` vocabulary file."""
    with open(path, 'rb') as f:
        pairs = [line.rstrip(b'\n').split(b' ', 1) for line in f if line.strip()]
    return {int(token): float(frequency) for frequency, token in pairs}


def vocabulary_tokens(path: str) -> List[str]:
    """The raw tokens of a ``<count> <token>`` vocabulary file, in id order (id i + 1 is token i); the spaces the
    file writes as ``transform.SPACE`` are spaces again."""
    with tf.io.gfile.GFile(path, 'rb') as f:
        return [line.rstrip(b'\n').split(b' ', 1)[1].decode('utf-8', 'replace').replace(transform.SPACE, ' ')
                for line in f if line.strip()]


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
    used = {c.vocabulary for c in spec.features if c.vocabulary is not None}
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

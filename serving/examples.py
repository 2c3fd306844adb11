"""Rows → ``tf.train.Example``: the requests a served model reads, from Python dicts or from files.

A served model parses raw serialized examples with the spec's serving columns
(:func:`feature_spec.schema.serving_feature_spec`): each column a scalar (``FixedLenFeature``) or a list
(``VarLenFeature``) of int64, float32 or string. The encoder below takes each column's type from there, so no
feature name or type is written here. Columns the served model does not read (labels, keys, ground truth) are
dropped; a list column is always present in the example, an empty list as an empty feature (as in the TFRecord
files of :mod:`tfx_pipeline.data`).

Files (:func:`read_examples`, by suffix, each optionally gzipped with a ``.gz`` suffix):

* ``.tfrecord``, ``.tfrecords``, ``.tfr``: serialized ``tf.Example`` records, passed on as they are.
* ``.csv``: a header row of column names; a list is a space-separated string, an empty field an empty list (the
  synthetic generator's ``csv/`` files).
* ``.jsonl``, ``.json``, ``.ndjson``: one JSON object per line, column name → scalar, or a JSON list for a list
  column.

Every reader yields serialized examples. A value that does not parse raises :class:`ExampleError` naming the
file, the line and the column.
"""

import csv
import gzip
import json
import numbers
from typing import Any, Dict, Iterator, Mapping, NamedTuple, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib

TFRECORD = 'tfrecord'
CSV = 'csv'
JSONL = 'jsonl'
SUFFIXES = {'.tfrecord': TFRECORD, '.tfrecords': TFRECORD, '.tfr': TFRECORD, '.csv': CSV, '.jsonl': JSONL,
            '.json': JSONL, '.ndjson': JSONL}
GZIP_SUFFIX = '.gz'

ExampleLike = Union[tf.train.Example, bytes, Mapping[str, Any]]
_DTYPES = {tf.int64: 'int64', tf.float32: 'float32', tf.string: 'string'}


class ExampleError(ValueError):
    """A row that cannot become an example; the message names the file (or example), the line and the column."""


class ColumnType(NamedTuple):
    """How a served model parses one raw column."""
    dtype: str      # 'int64', 'float32' or 'string'
    is_list: bool


class ExampleEncoder:
    """Builds the serving ``tf.train.Example`` of a row, with the column types of the feature spec.

    Args:
        spec: the feature spec the served model was trained with.
    """

    def __init__(self, spec: spec_lib.FeatureSpec):
        self.spec = spec
        self.columns: Dict[str, ColumnType] = {
            name: ColumnType(_DTYPES[feature.dtype], isinstance(feature, tf.io.VarLenFeature))
            for name, feature in schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD).items()}

    def encode(self, row: Mapping[str, Any], where: str = 'example') -> tf.train.Example:
        """The example of ``row`` (column name → scalar, or a list/tuple/array for a list column).

        Args:
            row: the row; columns the served model does not read are dropped.
            where: what the row is, for error messages (e.g. ``'data.jsonl: line 3'``).

        Raises:
            ExampleError: a value of the wrong type or shape, naming ``where`` and the column.
        """
        example = tf.train.Example()
        for name, value in row.items():
            column = self.columns.get(name)
            if column is None:
                continue
            values = self._check_shape(name, column, value, where)
            for item in values:
                if not _TYPE_CHECKS[column.dtype](item):
                    raise ExampleError(f'{where}: column {name!r}: {item!r} is not {_TYPE_NAMES[column.dtype]}')
            example.features.feature[name].CopyFrom(_feature(column.dtype, values, name, where))
        return example

    def encode_text(self, row: Mapping[str, str], where: str) -> tf.train.Example:
        """The example of a row of strings (CSV): a list column's values are separated by spaces, an empty field
        is an empty list; a scalar must not be empty."""
        example = tf.train.Example()
        for name, text in row.items():
            column = self.columns.get(name)
            if column is None:
                continue
            tokens = text.split() if column.is_list else [text.strip()]
            try:
                values = [_PARSERS[column.dtype](token) for token in tokens]
            except ValueError:
                raise ExampleError(f'{where}: column {name!r}: {text!r} is not '
                                   f'{"a list of " if column.is_list else ""}{_TYPE_NAMES[column.dtype]}') from None
            example.features.feature[name].CopyFrom(_feature(column.dtype, values, name, where))
        return example

    @staticmethod
    def _check_shape(name: str, column: ColumnType, value: Any, where: str) -> Sequence[Any]:
        is_sequence = isinstance(value, (list, tuple, np.ndarray))
        if column.is_list and not is_sequence:
            raise ExampleError(f'{where}: column {name!r} is a list column, got {value!r}')
        if not column.is_list and is_sequence:
            raise ExampleError(f'{where}: column {name!r} is a scalar column, got {value!r}')
        return list(value) if is_sequence else [value]


def to_example(row: Mapping[str, Any], spec: spec_lib.FeatureSpec) -> tf.train.Example:
    """The serving example of one row (see :meth:`ExampleEncoder.encode`; build the encoder once for many rows)."""
    return ExampleEncoder(spec).encode(row)


def split_for_rank(example: Union[tf.train.Example, bytes],
                   spec: spec_lib.FeatureSpec) -> Tuple[tf.train.Example, tf.train.Example]:
    """One full example → ``(context, candidate)`` for the ``rank`` signature.

    The candidate holds the spec's :attr:`~feature_spec.spec.FeatureSpec.candidate_columns` (sources of the
    ``item`` group's features), the context every other serving column (user, behaviour, request context).
    Columns the served model does not read are in neither; columns the example lacks are left out.
    """
    if isinstance(example, bytes):
        example = tf.train.Example.FromString(example)
    features = example.features.feature
    parts = []
    for columns in (spec.context_columns, spec.candidate_columns):
        part = tf.train.Example()
        for name in columns:
            if name in features:
                part.features.feature[name].CopyFrom(features[name])
        parts.append(part)
    return parts[0], parts[1]


def join_for_rank(context: Union[tf.train.Example, bytes],
                  candidate: Union[tf.train.Example, bytes]) -> tf.train.Example:
    """The inverse of :func:`split_for_rank`: the full example of one candidate in one context (the candidate's
    features win where both hold a column), which ``serving_default`` scores as ``rank`` scores the pair."""
    joined = tf.train.Example()
    for part in (context, candidate):
        joined.MergeFrom(tf.train.Example.FromString(part) if isinstance(part, bytes) else part)
    return joined


def file_format(path: str) -> str:
    """The format of ``path`` by its suffix (:data:`SUFFIXES`, optionally followed by ``.gz``)."""
    stem = path[:-len(GZIP_SUFFIX)] if path.endswith(GZIP_SUFFIX) else path
    for suffix, data_format in SUFFIXES.items():
        if stem.endswith(suffix):
            return data_format
    raise ExampleError(f'{path}: unknown file type; expected a name ending in one of {", ".join(SUFFIXES)}, '
                       f'optionally followed by {GZIP_SUFFIX}')


def read_examples(path: str, spec: spec_lib.FeatureSpec = None, required: Sequence[str] = ()) -> Iterator[bytes]:
    """Serialized examples of a TFRecord, CSV or JSON-lines file, chosen by its suffix (see the module docstring).

    Args:
        path: the file.
        spec: the feature spec; needed for CSV and JSON lines (column types) and for ``required``.
        required: columns every example must hold (e.g. the spec's ``serving_columns``); a missing one raises.

    Raises:
        ExampleError: the file cannot be read, a value does not parse, or a required column is missing.
    """
    data_format = file_format(path)
    if data_format == TFRECORD:
        return read_tfrecord(path, required)
    if spec is None:
        raise ExampleError(f'{path}: reading {data_format} needs the feature spec (column types)')
    return (read_csv if data_format == CSV else read_jsonl)(path, spec, required)


def read_tfrecord(path: str, required: Sequence[str] = ()) -> Iterator[bytes]:
    """The records of a TFRecord file (GZIP-compressed if the name ends in ``.gz``) as they are.

    Args:
        path: the file.
        required: columns every record must hold; when given, each record is parsed as a ``tf.train.Example``.
    """
    compression = 'GZIP' if path.endswith(GZIP_SUFFIX) else ''
    if not tf.io.gfile.exists(path):
        raise ExampleError(f'{path}: no such file')
    records = iter(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator())
    index = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            raise ExampleError(f'{path}: record {index + 1}: not a readable TFRecord: {e.message}') from None
        index += 1
        if required:
            try:
                example = tf.train.Example.FromString(record)
            except Exception as e:  # pylint: disable=broad-except  # protobuf's DecodeError differs by backend
                raise ExampleError(f'{path}: record {index}: not a serialized tf.train.Example ({e})') from None
            _check_required(example, required, f'{path}: record {index}')
        yield record


def read_csv(path: str, spec: spec_lib.FeatureSpec, required: Sequence[str] = ()) -> Iterator[bytes]:
    """The rows of a CSV file with a header (see :meth:`ExampleEncoder.encode_text`) as serialized examples.

    Raises:
        ExampleError: the header lacks a required column, a row has the wrong number of fields, or a value does not
        parse (naming the file, the line and the column).
    """
    encoder = ExampleEncoder(spec)
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ExampleError(f'{path}: empty file; expected a header row of column names')
        missing = [name for name in required if name not in header]
        if missing:
            raise ExampleError(f'{path}: line 1: the header lacks column {missing[0]!r} '
                               f'(missing: {", ".join(missing)})')
        for fields in _rows(reader, path):
            where = f'{path}: line {reader.line_num}'
            if len(fields) != len(header):
                raise ExampleError(f'{where}: {len(fields)} fields, the header has {len(header)}')
            yield encoder.encode_text(dict(zip(header, fields)), where).SerializeToString()


def read_jsonl(path: str, spec: spec_lib.FeatureSpec, required: Sequence[str] = ()) -> Iterator[bytes]:
    """The objects of a JSON-lines file (column name → scalar or list; blank lines skipped) as serialized examples.

    Raises:
        ExampleError: a line is not a JSON object, a value has the wrong type or shape, or a required column is
        missing (naming the file, the line and the column).
    """
    encoder = ExampleEncoder(spec)
    with _open_text(path) as f:
        for number, line in enumerate(_lines(f, path), 1):
            if not line.strip():
                continue
            where = f'{path}: line {number}'
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ExampleError(f'{where}: not valid JSON: {e}') from None
            if not isinstance(row, dict):
                raise ExampleError(f'{where}: expected a JSON object of column name → value, '
                                   f'got {type(row).__name__}')
            example = encoder.encode(row, where)
            _check_required(example, required, where)
            yield example.SerializeToString()


def _check_required(example: tf.train.Example, required: Sequence[str], where: str) -> None:
    missing = [name for name in required if name not in example.features.feature]
    if missing:
        raise ExampleError(f'{where}: column {missing[0]!r} is missing (missing: {", ".join(missing)})')


def _open_text(path: str):
    try:
        if path.endswith(GZIP_SUFFIX):
            return gzip.open(path, 'rt', encoding='utf-8', newline='')
        return open(path, encoding='utf-8', newline='')  # pylint: disable=consider-using-with
    except OSError as e:
        raise ExampleError(f'{path}: cannot open: {e.strerror or e}') from None


def _lines(f, path: str) -> Iterator[str]:
    """The lines of an open text file; a decoding or gzip error names the file."""
    try:
        yield from f
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise ExampleError(f'{path}: cannot read: {e}') from None


def _rows(reader, path: str) -> Iterator[Sequence[str]]:
    """The non-empty rows of a CSV reader; a decoding or CSV syntax error names the file and line."""
    try:
        for fields in reader:
            if fields:
                yield fields
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as e:
        raise ExampleError(f'{path}: line {reader.line_num}: cannot read: {e}') from None


def _feature(dtype: str, values: Sequence[Any], name: str, where: str) -> tf.train.Feature:
    try:
        if dtype == 'int64':
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        if dtype == 'float32':
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode('utf-8') if isinstance(v, str) else v for v in values]))
    except (ValueError, TypeError) as e:  # e.g. an integer out of the int64 range
        raise ExampleError(f'{where}: column {name!r}: {e}') from None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


_TYPE_CHECKS = {'int64': _is_int, 'float32': _is_number, 'string': lambda v: isinstance(v, (str, bytes))}
_TYPE_NAMES = {'int64': 'an integer', 'float32': 'a number', 'string': 'a string'}
_PARSERS = {'int64': int, 'float32': float, 'string': str}

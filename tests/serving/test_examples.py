"""serving.examples: the CSV and JSON-lines readers give the same serving features as the TFRecord files of the
synthetic generator, the rank split follows the spec's groups, and bad input names the file, line and column."""

import copy
import dataclasses
import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from feature_spec import model_inputs
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from serving import examples as examples_lib
from tfx_pipeline import data

SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         'feature_spec', 'specs', 'synthetic.yaml')
# A few hundred rows: every split non-empty, generated in about a second.
CONFIG = dataclasses.replace(data.PRESETS['tiny'], num_users=60, num_items=300, num_brands=40, num_impressions=600)


@pytest.fixture(scope='module')
def spec():
    return spec_lib.load(SPEC_PATH)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic')
    data.generate_and_write(CONFIG, out)
    return out


def _shard(dataset, data_format: str, split: str) -> str:
    return str(dataset / data_format / split / f'part-00000.{data_format}')


def _parsed(serialized, spec):
    """Serving features of serialized examples: name → dense array, or (indices, values, shape) of a list column."""
    features = tf.io.parse_example(tf.constant(serialized), schema_lib.serving_feature_spec(spec))
    return {name: (value.indices.numpy(), value.values.numpy(), value.dense_shape.numpy())
            if isinstance(value, tf.SparseTensor) else value.numpy() for name, value in features.items()}


def _assert_same_features(actual, expected):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, tuple):
            for got, want in zip(actual[name], value):
                np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_array_equal(actual[name], value, err_msg=name)


@pytest.mark.parametrize('split', ['eval', 'test'])
def test_csv_rows_parse_like_tfrecord_rows(dataset, spec, split):
    records = list(examples_lib.read_examples(_shard(dataset, 'tfrecord', split)))
    rows = list(examples_lib.read_examples(_shard(dataset, 'csv', split), spec, spec.serving_columns))
    assert len(rows) == len(records) > 0
    _assert_same_features(_parsed(rows, spec), _parsed(records, spec))
    served = set(spec.serving_columns)
    for row in rows:
        assert set(tf.train.Example.FromString(row).features.feature) == served  # labels, keys, truth dropped


def test_tfrecord_records_pass_through_unchanged_also_gzipped(dataset, tmp_path):
    path = _shard(dataset, 'tfrecord', 'eval')
    records = list(examples_lib.read_examples(path))
    gzipped = str(tmp_path / 'eval.tfrecord.gz')
    with tf.io.TFRecordWriter(gzipped, options='GZIP') as writer:
        for record in records:
            writer.write(record)
    assert list(examples_lib.read_examples(gzipped)) == records
    metadata = json.loads((dataset / 'metadata.json').read_text())
    assert len(records) == metadata['splits']['eval']['rows'] > 0


@pytest.mark.parametrize('name', ['test.jsonl', 'test.jsonl.gz', 'test.json'])
def test_json_lines_parse_like_tfrecord_rows(dataset, spec, tmp_path, name):
    records = list(examples_lib.read_examples(_shard(dataset, 'tfrecord', 'test')))
    lists = {n for n, f in schema_lib.serving_feature_spec(spec).items() if isinstance(f, tf.io.VarLenFeature)}
    lines = []
    for record in records:  # every column of the file, labels included: the reader drops what is not served
        row = {}
        for column, feature in tf.train.Example.FromString(record).features.feature.items():
            values = list(getattr(feature, feature.WhichOneof('kind')).value)
            row[column] = values if column in lists else values[0]
        lines.append(json.dumps(row))
    path = tmp_path / name
    text = '\n'.join(lines[:2] + [''] + lines[2:]) + '\n'  # a blank line is skipped
    path.write_bytes(gzip.compress(text.encode()) if name.endswith('.gz') else text.encode())
    rows = list(examples_lib.read_examples(str(path), spec, spec.serving_columns))
    assert len(rows) == len(records)
    _assert_same_features(_parsed(rows, spec), _parsed(records, spec))


def test_empty_list_field_is_a_present_empty_list(spec, tmp_path):
    encoder = examples_lib.ExampleEncoder(spec)
    lists = [n for n, c in encoder.columns.items() if c.is_list]
    row = {name: ('5' if column.dtype == 'int64' else '1.5') for name, column in encoder.columns.items()}
    row.update({lists[0]: '', lists[1]: '7 8 9'})
    path = tmp_path / 'rows.csv'
    path.write_text(','.join(row) + '\n' + ','.join(row.values()) + '\n')
    example = tf.train.Example.FromString(next(examples_lib.read_csv(str(path), spec)))
    empty = example.features.feature[lists[0]]
    assert empty.WhichOneof('kind') == 'int64_list' and not empty.int64_list.value
    assert list(example.features.feature[lists[1]].int64_list.value) == [7, 8, 9]
    as_dict = {name: ([int(v) for v in text.split()] if encoder.columns[name].is_list else
                      (int(text) if encoder.columns[name].dtype == 'int64' else float(text)))
               for name, text in row.items()}
    assert examples_lib.to_example(as_dict, spec) == example


def test_split_for_rank_partitions_the_served_columns(dataset, spec):
    records = list(examples_lib.read_examples(_shard(dataset, 'tfrecord', 'eval')))[:5]
    for record in records:
        full = tf.train.Example.FromString(record).features.feature
        context, candidate = examples_lib.split_for_rank(record, spec)
        context, candidate = context.features.feature, candidate.features.feature
        assert set(candidate) == set(spec.candidate_columns) and set(context) == set(spec.context_columns)
        assert not set(context) & set(candidate)
        assert set(context) | set(candidate) == set(spec.serving_columns)
        for name in spec.serving_columns:
            assert (context if name in context else candidate)[name] == full[name]
    item_sources = {c.source for c in spec.features if c.group == model_inputs.ITEM}
    assert set(spec.candidate_columns) == item_sources


def test_join_for_rank_inverts_the_split_and_the_candidate_wins(dataset, spec):
    records = list(examples_lib.read_examples(_shard(dataset, 'tfrecord', 'eval')))[:2]
    served = set(spec.serving_columns)
    for record in records:
        joined = examples_lib.join_for_rank(*examples_lib.split_for_rank(record, spec))
        full = tf.train.Example.FromString(record).features.feature
        assert dict(joined.features.feature) == {name: full[name] for name in full if name in served}
    other_context, _ = examples_lib.split_for_rank(records[1], spec)
    _, candidate = examples_lib.split_for_rank(records[0], spec)
    other_context.features.feature['item_id'].CopyFrom(
        tf.train.Feature(int64_list=tf.train.Int64List(value=[-1])))
    joined = examples_lib.join_for_rank(other_context.SerializeToString(), candidate)
    assert joined.features.feature['item_id'] == candidate.features.feature['item_id']


def test_split_for_rank_follows_the_spec_groups(spec):
    with open(SPEC_PATH) as f:
        raw = yaml.safe_load(f)
    moved = next(c.name for c in spec.features if c.group == model_inputs.CONTEXT and c.source == c.name)
    changed = copy.deepcopy(raw)
    changed['columns'] = {name: column for name, column in changed['columns'].items()
                          if column.get('source') != moved}  # other outputs of the raw column go
    changed['columns'][moved]['group'] = model_inputs.ITEM
    other = spec_lib.parse(changed)
    row = {name: ([1] if column.is_list else 1) for name, column in examples_lib.ExampleEncoder(other).columns.items()}
    context, candidate = examples_lib.split_for_rank(examples_lib.to_example(row, other), other)
    assert moved in candidate.features.feature and moved not in context.features.feature
    context, candidate = examples_lib.split_for_rank(examples_lib.to_example(row, spec), spec)
    assert moved in context.features.feature and moved not in candidate.features.feature


def _csv(tmp_path, spec, bad_column=None, bad_value=None):
    """A CSV of two valid rows (plus a label column); the second row's ``bad_column`` set to ``bad_value``."""
    columns = examples_lib.ExampleEncoder(spec).columns
    header = list(columns) + [spec.labels[0]]
    row = {name: ('3 4' if c.is_list else '2' if c.dtype == 'int64' else '0.25') for name, c in columns.items()}
    row[spec.labels[0]] = '1'
    rows = [dict(row), dict(row, **({bad_column: bad_value} if bad_column else {}))]
    path = tmp_path / 'rows.csv'
    path.write_text('\n'.join([','.join(header)] + [','.join(r[n] for n in header) for r in rows]) + '\n')
    return str(path)


def test_csv_bad_value_names_file_line_and_column(spec, tmp_path):
    columns = examples_lib.ExampleEncoder(spec).columns
    number = next(n for n, c in columns.items() if c.dtype == 'float32' and not c.is_list)
    integers = next(n for n, c in columns.items() if c.dtype == 'int64' and c.is_list)
    assert len(list(examples_lib.read_csv(_csv(tmp_path, spec), spec))) == 2
    for column, value in ((number, 'abc'), (integers, '3 x'), (number, '')):
        path = _csv(tmp_path, spec, column, value)
        with pytest.raises(examples_lib.ExampleError) as raised:
            list(examples_lib.read_examples(path, spec))
        assert f'{path}: line 3: column {column!r}' in str(raised.value)


def test_csv_without_a_required_column(spec, tmp_path):
    path = _csv(tmp_path, spec)
    assert len(list(examples_lib.read_csv(path, spec, spec.candidate_columns))) == 2
    with pytest.raises(examples_lib.ExampleError, match=r'line 1: the header lacks column \'not_there\''):
        list(examples_lib.read_csv(path, spec, list(spec.serving_columns) + ['not_there']))
    with open(path, 'a') as f:
        f.write('1,2\n')
    with pytest.raises(examples_lib.ExampleError, match=r'line 4: 2 fields, the header has'):
        list(examples_lib.read_csv(path, spec))


def test_json_errors_name_line_and_column(spec, tmp_path):
    columns = examples_lib.ExampleEncoder(spec).columns
    scalar = next(n for n, c in columns.items() if c.dtype == 'int64' and not c.is_list)
    listed = next(n for n, c in columns.items() if c.is_list)
    path = tmp_path / 'rows.jsonl'
    cases = [({scalar: 1.5}, f'column {scalar!r}: 1.5 is not an integer'),
             ({scalar: True}, f'column {scalar!r}: True is not an integer'),
             ({scalar: [1]}, f'column {scalar!r} is a scalar column'),
             ({listed: 5}, f'column {listed!r} is a list column'),
             ({scalar: 2 ** 70}, f'column {scalar!r}'),
             ([1, 2], 'expected a JSON object')]
    for row, message in cases:
        path.write_text(json.dumps({scalar: 1}) + '\n' + json.dumps(row) + '\n')
        with pytest.raises(examples_lib.ExampleError) as raised:
            list(examples_lib.read_jsonl(str(path), spec))
        assert str(raised.value).startswith(f'{path}: line 2: ') and message in str(raised.value)
    path.write_text(json.dumps({scalar: 1}) + '\n')
    with pytest.raises(examples_lib.ExampleError, match=f'{path}: line 1: column {listed!r} is missing'):
        list(examples_lib.read_jsonl(str(path), spec, [scalar, listed]))


def test_unreadable_files(dataset, spec, tmp_path):
    with pytest.raises(examples_lib.ExampleError, match='unknown file type'):
        examples_lib.read_examples(str(tmp_path / 'rows.parquet'), spec)
    with pytest.raises(examples_lib.ExampleError, match='needs the feature spec'):
        examples_lib.read_examples(str(tmp_path / 'rows.csv'))
    for name in ('missing.csv', 'missing.tfrecord'):
        with pytest.raises(examples_lib.ExampleError, match=f'{tmp_path / name}: '):
            list(examples_lib.read_examples(str(tmp_path / name), spec))
    garbage = tmp_path / 'garbage.tfrecord'
    garbage.write_bytes(b'not a tfrecord file at all')
    with pytest.raises(examples_lib.ExampleError, match=f'{garbage}: record 1: not a readable TFRecord'):
        list(examples_lib.read_examples(str(garbage)))
    csv_records = str(tmp_path / 'csv.tfrecord')  # TFRecords whose payload is not a tf.Example
    with tf.io.TFRecordWriter(csv_records) as writer:
        writer.write(b'\xff\xff not a proto')
    assert len(list(examples_lib.read_examples(csv_records))) == 1  # passed on as it is when nothing is required
    with pytest.raises(examples_lib.ExampleError, match='record 1: not a serialized tf.train.Example'):
        list(examples_lib.read_examples(csv_records, spec, spec.serving_columns))
    record = next(examples_lib.read_examples(_shard(dataset, 'tfrecord', 'eval')))
    context, _ = examples_lib.split_for_rank(record, spec)
    partial = str(tmp_path / 'context.tfrecord')
    with tf.io.TFRecordWriter(partial) as writer:
        writer.write(context.SerializeToString())
    assert len(list(examples_lib.read_examples(partial, spec, spec.context_columns))) == 1
    with pytest.raises(examples_lib.ExampleError, match=f'record 1: column {spec.candidate_columns[0]!r} is missing'):
        list(examples_lib.read_examples(partial, spec, spec.serving_columns))

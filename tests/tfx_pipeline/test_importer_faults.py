"""Faults found on public files (issue 16): values outside int64 or non-finite, a file cut inside its last line or
gzip stream, histories with the wrong separator, rows repeated across splits, output left half-written, and
ExampleValidator's schema on non-finite numbers. Each test failed before its fix."""

import gzip
import json
import os
import pathlib

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

from feature_spec import resolve
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from tfx_pipeline.importers import __main__ as cli
from tfx_pipeline.importers import amazon, common, criteo, libfm
from tfx_pipeline.local_transform import TRANSFORM_OUTPUT, run_transform

FIXTURES = pathlib.Path(__file__).parent.parent / 'fixtures'
CRITEO = FIXTURES / 'criteo_sample.txt'
FRAPPE = FIXTURES / 'frappe_sample.libfm'
AMAZON = FIXTURES / 'amazon_sample.txt'


def _criteo_line(label='1', integers=('1',) * 13, categoricals=('ab',) * 26):
    return '\t'.join((label, *integers, *categoricals)) + '\n'


def _records(out_dir, split):
    path = os.path.join(out_dir, 'tfrecord', split, 'part-00000.tfrecord')
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def _import_fails(tmp_path, capsys, fmt, data: bytes, name='bad.txt'):
    source = tmp_path / name
    source.write_bytes(data)
    assert cli.main([fmt, '--input', str(source), '--out', str(tmp_path / 'out')]) == 2
    assert not (tmp_path / 'out').exists()
    return str(source), capsys.readouterr().err


@pytest.mark.parametrize('fmt,text,line,column,words', [
    ('criteo', _criteo_line() + _criteo_line('0', ('9223372036854775808',) + ('1',) * 12), 2, 'I1', '64-bit'),
    ('criteo', _criteo_line('0', ('1',) * 12 + ('-99999999999999999999',)), 1, 'I13', '64-bit'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:99999999999999999999:1 1:2:1\n', 2, 'feature 1', '64-bit'),
    ('libfm', '1 0:18446744073709551616:1:1 1:2:1\n', 1, 'feature 1', None),
    ('libfm', '1 0:1:1 1:2:nan\n-1 0:1:1 1:2:1\n', 1, 'feature 2', 'not a finite number'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:1:-inf 1:2:1\n', 2, 'feature 1', 'not a finite number'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:1:1 1:2:1e39\n', 2, 'feature 2', 'float32'),
    ('movielens', '1::1::5::978300760\n1::2::NaN::978300761\n', 2, 'Rating', 'not a finite number'),
    ('movielens', '1::1::5::978300760\n1::2::4::9223372036854775808\n', 2, 'Timestamp', '64-bit'),
])
def test_values_outside_int64_or_non_finite_name_line_and_column(tmp_path, capsys, fmt, text, line, column, words):
    source, error = _import_fails(tmp_path, capsys, fmt, text.encode())
    assert error.startswith(f'error: {source}:{line}: column {column}: '), error
    assert words is None or words in error, error


def test_int64_bounds_import_exactly(tmp_path):
    source = tmp_path / 'bounds.txt'
    lines = [_criteo_line(str(k % 2)) for k in range(8)]
    lines[0] = _criteo_line('1', ('9223372036854775807', '-9223372036854775808') + ('1',) * 11)
    source.write_text(''.join(lines))
    criteo.import_file(str(source), str(tmp_path / 'out'), fractions=(0.5, 0.25, 0.25), min_frequency=1)
    first = _records(str(tmp_path / 'out'), 'train')[0].features.feature
    assert first['I1'].int64_list.value == [2 ** 63 - 1] and first['I2'].int64_list.value == [-2 ** 63]


def test_writer_refuses_to_wrap_an_integer_around():
    with pytest.raises(ValueError, match='64-bit'):
        common.serialize_example({'x': 2 ** 63}, {'x': 'int64'})


def test_a_last_line_cut_inside_its_last_column_is_an_error(tmp_path, capsys):
    lines = CRITEO.read_bytes().splitlines(keepends=True)
    cut = b''.join(lines[:-1]) + lines[-1][:-4]          # the last hashed value loses 3 of its 8 digits
    source, error = _import_fails(tmp_path, capsys, 'criteo', cut)
    assert error.startswith(f'error: {source}:{len(lines)}: '), error
    assert 'no line end' in error and 'last column' in error, error
    complete = tmp_path / 'complete.txt'
    complete.write_bytes(cut + b'\n')                   # the hint's fix makes it import
    assert cli.main(['criteo', '--input', str(complete), '--out', str(tmp_path / 'ok')]) == 0


def test_a_cut_gzip_stream_is_an_error_naming_the_last_complete_line(tmp_path, capsys):
    packed = gzip.compress(CRITEO.read_bytes())
    source, error = _import_fails(tmp_path, capsys, 'criteo', packed[:len(packed) * 2 // 3], name='bad.txt.gz')
    assert error.startswith(f'error: {source}:'), error
    assert 'gzip stream is cut or corrupt' in error, error
    garbage = bytearray(packed)
    garbage[len(garbage) // 2:len(garbage) // 2 + 64] = bytes(64)
    source, error = _import_fails(tmp_path, capsys, 'criteo', bytes(garbage), name='garbled.txt.gz')
    assert error.startswith(f'error: {source}:'), error


def test_amazon_histories_with_another_separator_are_an_error(tmp_path, capsys):
    text = AMAZON.read_text().replace('\x02', '|')
    source, error = _import_fails(tmp_path, capsys, 'amazon', text.encode())
    first = next(n for n, line in enumerate(text.splitlines(), start=1) if '|' in line.split('\t')[4])
    assert error.startswith(f'error: {source}:{first}: column hist_item_id: '), error
    assert "'|'" in error and 'separates history steps' in error, error


def test_amazon_histories_of_one_step_give_a_warning(tmp_path, capsys):
    rows = [line.split('\t') for line in AMAZON.read_text().splitlines()]
    text = ''.join('\t'.join(r[:4] + [r[4].split('\x02')[0], r[5].split('\x02')[0] if r[4] else '']) + '\n'
                   for r in rows)
    source = tmp_path / 'short.txt'
    source.write_text(text)
    assert cli.main(['amazon', '--input', str(source), '--out', str(tmp_path / 'out')]) == 0
    captured = capsys.readouterr()
    assert 'warning: ' in captured.err and 'no history has more than one step' in captured.err, captured.err
    assert json.loads(captured.out)['warnings'] == 1
    metadata = json.loads((tmp_path / 'out' / common.METADATA_FILE).read_text())
    assert len(metadata['warnings']) == 1 and metadata['longest_history'] == 1
    clean = amazon.import_file(str(AMAZON), str(tmp_path / 'clean'))
    assert clean['warnings'] == [] and clean['duplicates']['held_out_rows_in_train'] == 0


def test_rows_repeated_across_splits_give_a_warning_naming_two_equal_lines(tmp_path, capsys):
    text = FRAPPE.read_text()
    source = tmp_path / 'repeated.libfm'
    source.write_text(text + text)                        # a sample file that repeats itself
    assert cli.main(['libfm', '--input', str(source), '--out', str(tmp_path / 'out')]) == 0
    error = capsys.readouterr().err
    assert error.startswith(f'warning: {source}: '), error
    metadata = json.loads((tmp_path / 'out' / common.METADATA_FILE).read_text())
    found = metadata['duplicates']
    held_out = metadata['splits']['eval']['rows'] + metadata['splits']['test']['rows']
    assert found['repeated_rows'] == 300 and found['held_out_rows'] == held_out
    # a held-out row leaks when its twin (300 lines away) is in train: about 70 % of them with a 70/20/10 split
    assert 0.55 * held_out < found['held_out_rows_in_train'] < 0.85 * held_out
    held, train = found['example']
    lines = source.read_text().splitlines()
    assert held != train and lines[held - 1] == lines[train - 1] and abs(held - train) == 300
    assert f'line {held} repeats line {train}' in error
    assert libfm.import_file(str(FRAPPE), str(tmp_path / 'clean'))['warnings'] == []


def test_a_failure_while_writing_leaves_the_output_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / 'out'
    criteo.import_file(str(CRITEO), str(out), min_frequency=2)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}
    (out / 'notes.txt').write_text('kept')
    parse = criteo.parse_line
    calls = {'n': 0}

    def failing(path, number, line):
        calls['n'] += 1
        if calls['n'] > 320 + 100:                       # the first pass reads 320 lines; the second fails midway
            raise OSError(28, 'No space left on device')
        return parse(path, number, line)

    monkeypatch.setattr(criteo, 'parse_line', failing)
    with pytest.raises(OSError):
        criteo.import_file(str(CRITEO), str(out), min_frequency=5)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file() and p.name != 'notes.txt'}
    assert after == before and (out / 'notes.txt').read_text() == 'kept'
    assert [p.name for p in tmp_path.iterdir()] == ['out']   # no staging directory left behind


def test_example_validator_schema_flags_non_finite_numbers(tmp_path):
    spec = spec_lib.load(os.path.join(os.path.dirname(schema_lib.__file__), 'specs', 'synthetic.yaml'))
    schema = schema_lib.schema(spec)
    floats = [f for f in schema.feature if f.type == schema_pb2.FLOAT]
    assert floats and all(f.float_domain.disallow_nan and f.float_domain.disallow_inf for f in floats)
    column = floats[0].name
    path = str(tmp_path / 'nan.tfrecord')
    with tf.io.TFRecordWriter(path) as writer:
        for value in (1.0, float('nan'), 2.0, float('inf')):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                column: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))})).SerializeToString())
    only = schema_pb2.Schema()
    only.feature.add().CopyFrom(floats[0])
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_tfrecord(path), only)
    reasons = {r.type for r in anomalies.anomaly_info[column].reason}
    assert {anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_NAN, anomalies_pb2.AnomalyInfo.FLOAT_TYPE_HAS_INF} <= reasons


@pytest.mark.pipeline
def test_ids_with_spaces_get_their_own_vocabulary_ids(tmp_path):
    """Amazon categories hold spaces ("Toys & Games"); the vocabulary file is ``<count> <token>`` lines, and every
    such token used to be looked up by its first word and land in the one OOV bucket."""
    out = str(tmp_path / 'amazon')
    amazon.import_file(str(AMAZON), out)
    spec = spec_lib.load(os.path.join(out, common.SPEC_FILE))
    patterns = {split: os.path.join(out, 'tfrecord', split, '*') for split in ('train', 'eval')}
    run_transform(spec, patterns, str(tmp_path / 'transform'))
    tft_output = tft.TFTransformOutput(str(tmp_path / 'transform' / TRANSFORM_OUTPUT))
    tokens = resolve.vocabulary_tokens(tft_output.vocabulary_file_by_name('category'))
    assert 'Toys & Games' in tokens and 'Clothing, Shoes & Jewelry' in tokens
    records = [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(out, 'tfrecord', 'train',
                                                                        'part-00000.tfrecord'))]
    raw = tf.io.parse_example(records, schema_lib.raw_feature_spec(spec))
    transformed = tft_output.transform_features_layer()(raw)
    by_category = {}
    for category, index in zip(raw['category'].numpy(), transformed['category'].numpy()):
        by_category.setdefault(category.decode(), set()).add(int(index))
    assert all(len(ids) == 1 for ids in by_category.values()), by_category
    assert {c: ids.pop() for c, ids in by_category.items()} == {c: tokens.index(c) + 1 for c in by_category}

"""The Criteo, libFM and Amazon importers: written spec, rows equal to the source lines (missing values and histories
included), splits, labels, CLI errors naming file, line and column, and the spec's Transform feeding a model on the
imported data, which exports and ranks."""

import collections
import glob
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import resolve
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models import registry
from serving.examples import join_for_rank, split_for_rank
from tfx_pipeline import export, trainer
from tfx_pipeline.config import TrainingConfig
from tfx_pipeline.importers import __main__ as cli
from tfx_pipeline.importers import amazon, common, criteo, libfm
from tfx_pipeline.local_transform import TRANSFORM_OUTPUT, run_transform

FIXTURES = pathlib.Path(__file__).parent.parent / 'fixtures'
CRITEO = str(FIXTURES / 'criteo_sample.txt')
FRAPPE = str(FIXTURES / 'frappe_sample.libfm')
AMAZON = str(FIXTURES / 'amazon_sample.txt')


def _source_lines(path):
    return [line.rstrip('\n') for line in open(path) if line.strip()]


def _read_split(out_dir, split):
    """The rows of one written split, parsed with the spec's raw parsing spec, as dicts of Python values."""
    spec = spec_lib.load(os.path.join(out_dir, common.SPEC_FILE))
    parsing = schema_lib.raw_feature_spec(spec)
    rows = []
    for record in tf.data.TFRecordDataset(os.path.join(out_dir, 'tfrecord', split, 'part-00000.tfrecord')):
        parsed = tf.io.parse_single_example(record, parsing)
        rows.append({k: (v.numpy().decode() if v.dtype == tf.string else v.numpy().item()) for k, v in parsed.items()})
    return rows


def _transform(out_dir):
    spec = spec_lib.load(os.path.join(out_dir, common.SPEC_FILE))
    patterns = {split: os.path.join(out_dir, 'tfrecord', split, '*') for split in ('train', 'eval')}  # test: as eval
    outputs = run_transform(spec, patterns, os.path.join(out_dir, 'transform'))
    return spec, tft.TFTransformOutput(os.path.join(out_dir, 'transform', TRANSFORM_OUTPUT)), outputs


@pytest.fixture(name='criteo_data', scope='module')
def fixture_criteo_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('criteo'))
    return out, criteo.import_file(CRITEO, out, min_frequency=2)


@pytest.fixture(name='frappe_data', scope='module')
def fixture_frappe_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('frappe'))
    return out, libfm.import_file(FRAPPE, out)


@pytest.fixture(name='amazon_data', scope='module')
def fixture_amazon_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('amazon'))
    return out, amazon.import_file(AMAZON, out, max_length=10)


@pytest.fixture(name='amazon_transformed', scope='module')
def fixture_amazon_transformed(amazon_data):
    return _transform(amazon_data[0])


@pytest.fixture(name='criteo_transformed', scope='module')
def fixture_criteo_transformed(criteo_data):
    return _transform(criteo_data[0])


@pytest.fixture(name='frappe_transformed', scope='module')
def fixture_frappe_transformed(frappe_data):
    return _transform(frappe_data[0])


# ---------------------------------------------------------------------------------------------------------------
# Criteo.


def test_criteo_spec_loads_with_the_documented_choices(criteo_data):
    out, metadata = criteo_data
    spec = spec_lib.load(metadata['feature_spec'])
    assert spec.raw_columns == criteo.COLUMNS and spec.labels == ('click',)
    assert spec['I2'].transform.type == 'log' and spec['I2'].dtype == 'int64'
    assert spec['C1'].dtype == 'string' and spec.vocabularies['C1'].min_frequency == 2
    assert {c.group for c in spec.features} == {'item'}
    assert metadata['format'] == 'criteo' and metadata['source'] == CRITEO
    assert json.loads(pathlib.Path(out, common.METADATA_FILE).read_text()) == metadata


def test_criteo_rows_equal_source_lines_in_line_order(criteo_data):
    out, metadata = criteo_data
    lines = _source_lines(CRITEO)
    splits = {split: _read_split(out, split) for split in common.SPLITS}
    assert [len(splits[s]) for s in common.SPLITS] == [256, 32, 32]   # 320 lines, 80/10/10 by line order
    assert {s: metadata['splits'][s]['rows'] for s in common.SPLITS} == {'train': 256, 'eval': 32, 'test': 32}
    written = splits['train'] + splits['eval'] + splits['test']
    for row, line in zip(written, lines):
        fields = line.split('\t')
        assert row['click'] == int(fields[0])
        for k, name in enumerate(criteo.INTEGER_COLUMNS, start=1):
            assert row[name] == (int(fields[k]) if fields[k] else 0), name
        for k, name in enumerate(criteo.CATEGORICAL_COLUMNS, start=14):
            assert row[name] == (fields[k] or '__missing__'), name
    for split in common.SPLITS:
        rows = splits[split]
        assert metadata['splits'][split]['ctr'] == pytest.approx(np.mean([r['click'] for r in rows]), abs=1e-6)
    # Line 1, by hand: "0 <tab> 0 <tab> 49 <tab> 81 <tab> (missing) …", C1 8cf07265, C26 missing.
    first = written[0]
    assert (first['click'], first['I1'], first['I2'], first['I3'], first['I4']) == (0, 0, 49, 81, 0)
    assert first['C1'] == '8cf07265' and first['C26'] == '__missing__'
    assert min(r['I2'] for r in written) < 0   # negative integers kept as they are


@pytest.mark.pipeline
def test_criteo_vocabulary_keeps_missing_token_and_drops_rare_ids(criteo_data, criteo_transformed):
    _, tft_output, _ = criteo_transformed
    train = _read_split(criteo_data[0], 'train')
    counts = collections.Counter(r['C22'] for r in train)
    vocabulary = {line.decode().split(' ', 1)[1] for line in tft_output.vocabulary_by_name('C22')}  # "count token"
    assert counts['__missing__'] >= 2 and '__missing__' in vocabulary
    assert vocabulary == {token for token, n in counts.items() if n >= 2}


@pytest.mark.pipeline
def test_criteo_transform_feeds_deepfm(criteo_transformed):
    _check_model_predicts(*criteo_transformed, numeric={'I1', 'I13'}, categorical={'C1', 'C26'})


@pytest.mark.pipeline
def test_criteo_model_exports_and_ranks_with_every_column_in_the_candidate(criteo_data, criteo_transformed,
                                                                          tmp_path):
    spec, tft_output, _ = criteo_transformed
    assert spec.context_columns == ()  # anonymous columns: all the candidate's
    model = trainer.build_model(spec, tft_output, TrainingConfig(model='fm'))
    examples = export.read_examples(os.path.join(criteo_data[0], 'tfrecord', 'test', '*'), 20)
    export.export_serving_model(model, tft_output, spec, 'tfrecord', str(tmp_path), warmup_examples=examples)
    loaded = tf.saved_model.load(str(tmp_path))
    context, _ = split_for_rank(examples[0], spec)
    candidates = [split_for_rank(e, spec)[1].SerializeToString() for e in examples]
    ranked = loaded.signatures['rank'](context=tf.constant(context.SerializeToString()),
                                       candidates=tf.constant(candidates))['probabilities'].numpy()
    served = loaded.signatures['serving_default'](examples=tf.constant(examples))['probabilities'].numpy()
    np.testing.assert_allclose(ranked, served, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# libFM.


def test_frappe_rows_labels_and_random_split(frappe_data):
    out, metadata = frappe_data
    spec = spec_lib.load(metadata['feature_spec'])
    assert spec.raw_columns == ('click',) + tuple(f'f{k}' for k in range(10))
    assert metadata['variant'] == libfm.WITHOUT_FIELDS and metadata['valued_fields'] == []
    lines = _source_lines(FRAPPE)
    expected = []
    for line in lines:
        tokens = line.split()
        row = {'click': 1 if tokens[0] == '1' else 0}
        row.update({f'f{k}': int(token.split(':')[0]) for k, token in enumerate(tokens[1:])})
        expected.append(row)
    assert lines[0].startswith('-1 ') and expected[0]['click'] == 0
    splits = {split: _read_split(out, split) for split in common.SPLITS}
    assert [len(splits[s]) for s in common.SPLITS] == [210, 60, 30]   # 300 lines, 70/20/10
    # The seeded random split: row i goes to the i-th split drawn, rows keep their relative order.
    assignment = list(common.split_assignment((210, 60, 30), common.RANDOM, 0))
    assert assignment[:210] != ['train'] * 210
    for split in common.SPLITS:
        assert splits[split] == [row for row, s in zip(expected, assignment) if s == split]


def test_libfm_fields_missing_values_and_label_forms(tmp_path):
    source = tmp_path / 'ffm.libfm'
    source.write_text('1 0:3:1 1:7:1 2:0:0.5\n'
                      '-1.0 0:4:1 2:0:2\n'             # field 1 missing
                      '0 0:3:1 1:8:1 2:1:1\n'
                      '1.0 1:7:1 0:5:1 2:0:-1\n'       # fields out of order
                      '-1 0:3:1 1:7:1 2:0:1\n')
    metadata = libfm.import_file(str(source), str(tmp_path / 'out'), fractions=(0.6, 0.2, 0.2),
                                 split_method=common.BY_ORDER)
    spec = spec_lib.load(metadata['feature_spec'])
    assert spec.raw_columns == ('click', 'f0', 'f1', 'f2', 'f2_value')
    assert spec['f2_value'].kind == 'numeric' and spec['f2_value'].transform.type == 'zscore'
    rows = [r for split in common.SPLITS for r in _read_split(str(tmp_path / 'out'), split)]
    assert [r['click'] for r in rows] == [1, 0, 0, 1, 0]
    assert [r['f1'] for r in rows] == [7, -1, 8, 7, 7]
    assert [r['f0'] for r in rows] == [3, 4, 3, 5, 3]
    assert [r['f2_value'] for r in rows] == [0.5, 2.0, 1.0, -1.0, 1.0]
    assert [metadata['splits'][s]['rows'] for s in common.SPLITS] == [3, 1, 1]


@pytest.mark.pipeline
def test_frappe_transform_feeds_deepfm(frappe_transformed):
    spec, tft_output, _ = frappe_transformed
    _check_model_predicts(*frappe_transformed, numeric=set(), categorical={f'f{k}' for k in range(10)})
    # Every user index of the training split is in f0's vocabulary (min_frequency 1).
    assert tft_output.vocabulary_size_by_name('f0') >= 20 and spec['f0'].transform['min_frequency'] is None


def _check_model_predicts(spec, tft_output, outputs, numeric, categorical):
    inputs = resolve.model_inputs_from(spec, tft_output)
    assert numeric <= {f.name for f in inputs.of_kind('numeric')}
    assert categorical <= {f.name for f in inputs.of_kind('categorical')}
    model = registry.build('deepfm', inputs, {'hidden_units': (8,)},
                           frequencies=resolve.table_frequencies(spec, tft_output))
    files = glob.glob(outputs['eval'])
    batch = next(iter(tf.data.TFRecordDataset(files, compression_type='GZIP').batch(16)))
    features = tf.io.parse_example(batch, tft_output.transformed_feature_spec())
    labels = features.pop('click')
    probabilities = model(features, training=False)['probabilities'].numpy()
    assert probabilities.shape == labels.shape == (16,)
    assert np.all((probabilities > 0) & (probabilities < 1))
    for field in inputs.of_kind('categorical'):
        ids = features[field.name].numpy()
        assert ids.min() >= 1 and ids.max() < field.vocab_size, field.name


# ---------------------------------------------------------------------------------------------------------------
# Amazon (DIN/DIEN).


def _amazon_rows(out_dir, split):
    """The rows of one written split, histories as lists of strings."""
    parsing = {name: tf.io.VarLenFeature(tf.string) if name.startswith('hist_') else
               tf.io.FixedLenFeature([], tf.int64 if name == 'click' else tf.string) for name in amazon.COLUMNS}
    rows = []
    for record in tf.data.TFRecordDataset(os.path.join(out_dir, 'tfrecord', split, 'part-00000.tfrecord')):
        parsed = tf.io.parse_single_example(record, parsing)
        rows.append({name: ([v.decode() for v in value.values.numpy()] if isinstance(value, tf.SparseTensor) else
                            value.numpy().item() if value.dtype == tf.int64 else value.numpy().decode())
                     for name, value in parsed.items()})
    return rows


def test_amazon_rows_equal_source_lines_with_their_histories(amazon_data):
    out, metadata = amazon_data
    lines = _source_lines(AMAZON)
    written = [row for split in ('train', 'eval', 'test') for row in _amazon_rows(out, split)]
    assert metadata['splits']['train']['rows'] == 240 and len(written) == len(lines) == 300
    for row, line in zip(written, lines):  # line order: the first 80 % train, then eval, then test
        label, user, item, category, items, categories = line.split('\t')
        assert (row['click'], row['user_id'], row['item_id'], row['category']) == (int(label), user, item, category)
        assert row['hist_item_id'] == (items.split('\x02') if items else [])
        assert row['hist_category'] == (categories.split('\x02') if categories else [])
    assert any(not row['hist_item_id'] for row in written) and metadata['longest_history'] > 10
    assert any(',' in row['category'] and ' ' in row['category'] for row in written)  # names kept whole
    spec = spec_lib.load(metadata['feature_spec'])
    assert spec['hist_item_id'].vocabulary == spec['item_id'].vocabulary == 'item_id'
    assert spec.gauc_group == 'user_id' and spec.behavior.max_length == 10
    assert set(spec.context_columns) == {'hist_item_id', 'hist_category'}


@pytest.mark.pipeline
def test_amazon_transform_keeps_the_most_recent_steps_and_feeds_dien(amazon_data, amazon_transformed):
    spec, tft_output, outputs = amazon_transformed
    inputs = resolve.model_inputs_from(spec, tft_output)
    assert {f.name: f.query for f in inputs.of_kind('sequence')} == {'hist_item_id': 'item_id',
                                                                     'hist_category': 'category'}
    records = list(tf.data.TFRecordDataset(glob.glob(outputs['train']), compression_type='GZIP').batch(240))
    features = tf.io.parse_example(records[0], tft_output.transformed_feature_spec())
    lengths = [len(row['hist_item_id']) for row in _amazon_rows(amazon_data[0], 'train')]
    np.testing.assert_array_equal(features['hist_length'], np.minimum(lengths, 10))
    longest = int(np.argmax(lengths))
    vocabulary = tft_output.vocabulary_by_name('item_id')  # "<count> <token>" lines, id − 1 = line number
    newest = _amazon_rows(amazon_data[0], 'train')[longest]['hist_item_id'][-10:]
    kept = [vocabulary[i - 1].decode().split(' ', 1)[1] for i in features['hist_item_id'].numpy()[longest]]
    assert kept == newest  # the most recent 10 steps, oldest first
    features.pop('click')
    for name in ('dien', 'din'):
        model = registry.build(name, inputs, {'hidden_units': (8,)},
                               frequencies=resolve.table_frequencies(spec, tft_output))
        probabilities = model(features, training=False)['probabilities'].numpy()
        assert probabilities.shape == (240,) and np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.pipeline
def test_amazon_model_exports_and_ranks_the_candidates_of_one_history(amazon_data, amazon_transformed, tmp_path):
    spec, tft_output, _ = amazon_transformed
    model = trainer.build_model(spec, tft_output, TrainingConfig(model='dien'))
    examples = export.read_examples(os.path.join(amazon_data[0], 'tfrecord', 'test', '*'), 30)
    export.export_serving_model(model, tft_output, spec, 'tfrecord', str(tmp_path), warmup_examples=examples)
    loaded = tf.saved_model.load(str(tmp_path))
    context = split_for_rank(examples[3], spec)[0]
    candidates = [split_for_rank(e, spec)[1] for e in examples]
    joined = [join_for_rank(context, c).SerializeToString() for c in candidates]
    ranked = loaded.signatures['rank'](context=tf.constant(context.SerializeToString()),
                                       candidates=tf.constant([c.SerializeToString() for c in candidates]))
    served = loaded.signatures['serving_default'](examples=tf.constant(joined))
    np.testing.assert_allclose(ranked['probabilities'].numpy(), served['probabilities'].numpy(), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Command line.


@pytest.mark.parametrize('fmt,text,line,column', [
    ('criteo', '1' + '\t1' * 13 + '\tab' * 26 + '\n' + '0' + '\t1' * 12 + '\tab' * 26 + '\n', 2, None),
    ('criteo', '1' + '\t1' * 13 + '\tab' * 26 + '\n\n' + '0\t1\t2\tx7' + '\t1' * 10 + '\tab' * 26 + '\n', 3, 'I3'),
    ('criteo', '2' + '\t1' * 13 + '\tab' * 26 + '\n', 1, 'label'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:1:1 1:2\n', 2, 'feature 2'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:1:1 1:x:1\n', 2, 'feature 2'),
    ('libfm', '1 0:1:1 1:2:1\n-1 0:1:1 0:2:1\n', 2, 'feature 2'),
    ('libfm', '1 1:1 2:1\n2 1:1 3:1\n', 2, 'label'),
    ('libfm', '1 1:1 2:1\n0 1:1\n', 2, None),
    ('amazon', '1\tA1\tB1\tBooks\tB2\tBooks\n0\tA1\tB3\tBooks\tB2\n', 2, None),
    ('amazon', '1\tA1\tB1\tBooks\tB2\tBooks\n2\tA1\tB3\tBooks\tB2\tBooks\n', 2, 'label'),
    ('amazon', '1\tA1\t \tBooks\tB2\tBooks\n', 1, 'item_id'),
    ('amazon', '1\tA1\tB1\tBooks\tB2\x02B3\tBooks\n', 1, 'hist_category'),
    ('amazon', '1\tA1\tB1\tBooks\tB2\x02\tBooks\x02Books\n', 1, 'hist_item_id'),
])
def test_cli_errors_name_file_line_and_column(tmp_path, capsys, fmt, text, line, column):
    source = tmp_path / 'bad.txt'
    source.write_text(text)
    assert cli.main([fmt, '--input', str(source), '--out', str(tmp_path / 'out')]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'error: {source}:{line}:'), error
    assert (f': column {column}: ' in error) if column else (': column ' not in error), error
    assert not (tmp_path / 'out').exists()   # checked before anything is written


def test_cli_rejects_bad_options_and_prints_one_json_line(tmp_path, capsys):
    assert cli.main(['criteo', '--input', CRITEO, '--out', str(tmp_path), '--splits', '0.8,0.3,0.1']) == 2
    assert 'sum to 1' in capsys.readouterr().err
    assert cli.main(['libfm', '--input', str(tmp_path / 'absent'), '--out', str(tmp_path)]) == 2
    assert 'absent: no such file' in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, '-m', 'tfx_pipeline.importers', 'libfm', '--input', FRAPPE, '--out', str(tmp_path / 'o'),
         '--splits', '0.5,0.25,0.25', '--split_by', 'order'],
        capture_output=True, text=True, check=False, cwd=pathlib.Path(__file__).parent.parent.parent,
        env={**os.environ, 'TF_USE_LEGACY_KERAS': '1'})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary['rows'] == {'train': 150, 'eval': 75, 'test': 75}
    assert summary['feature_spec'] == str(tmp_path / 'o' / common.SPEC_FILE)
    first = _read_split(str(tmp_path / 'o'), 'train')[0]
    assert first['f0'] == int(_source_lines(FRAPPE)[0].split()[1].split(':')[0])   # line order: line 1 first


def test_serialized_examples_equal_tf_examples():
    columns = {'i': 'int64', 'f': 'float32', 's': 'string', 'long_name_' * 15: 'int64'}
    for i, f, s, big in ((-3, 1.5, 'héllo', 2 ** 40), (0, -0.0, '', 127), (-2 ** 63, 3e38, 'x' * 300, 2 ** 63 - 1)):
        row = {'i': i, 'f': f, 's': s, 'long_name_' * 15: big}
        expected = tf.train.Example(features=tf.train.Features(feature={
            'i': tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
            'f': tf.train.Feature(float_list=tf.train.FloatList(value=[f])),
            's': tf.train.Feature(bytes_list=tf.train.BytesList(value=[s.encode()])),
            'long_name_' * 15: tf.train.Feature(int64_list=tf.train.Int64List(value=[big]))}))
        assert tf.train.Example.FromString(common.serialize_example(row, columns)) == expected


def test_serialized_lists_equal_tf_examples():
    columns = {'ids': 'int64', 'names': 'string', 'values': 'float32', 'none': 'int64', 'no_names': 'string'}
    row = {'ids': [3, -1, 2 ** 40], 'names': ['a', 'héllo', ''], 'values': (0.5, -2.0), 'none': [], 'no_names': []}
    expected = tf.train.Example(features=tf.train.Features(feature={
        'ids': tf.train.Feature(int64_list=tf.train.Int64List(value=[3, -1, 2 ** 40])),
        'names': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'a', 'héllo'.encode(), b''])),
        'values': tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, -2.0])),
        'none': tf.train.Feature(int64_list=tf.train.Int64List()),
        'no_names': tf.train.Feature(bytes_list=tf.train.BytesList())}))
    assert tf.train.Example.FromString(common.serialize_example(row, columns)) == expected


CRITEO_LINE = '1' + '\t1' * 13 + '\tab' * 26 + '\n'


@pytest.mark.parametrize('fmt,data,line', [
    ('criteo', (CRITEO_LINE * 3).encode() + b'0' + b'\t1' * 13 + b'\tab' * 25 + b'\ta\xffb\n', 4),
    ('libfm', b'1 0:1:1 1:2:1\n-1 0:1:1 1:\xe9:1\n', 2),
    ('amazon', b'1\tA1\tB1\tBooks\tB2\tBooks\n1\tA1\tB\xc3\tBooks\tB2\tBooks\n', 2),
    ('criteo', (CRITEO_LINE + '\t' * 39 + '\n' + CRITEO_LINE).encode(), 2),   # a line of only tabs is a line
    ('amazon', b'1\tA1\tB1\tBooks\tB2\tBooks\n\t\t\t\t\t\n', 2),
])
def test_cli_names_the_line_of_bad_bytes_and_of_a_line_of_tabs(tmp_path, capsys, fmt, data, line):
    source = tmp_path / 'bad.txt'
    source.write_bytes(data)
    assert cli.main([fmt, '--input', str(source), '--out', str(tmp_path / 'out')]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'error: {source}:{line}:'), error
    if b'\t\t\t' not in data:
        assert 'not valid UTF-8' in error and 'character' in error, error
    assert not (tmp_path / 'out').exists()

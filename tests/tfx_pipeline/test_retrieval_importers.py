"""The retrieval importers (SASRec/BERT4Rec sequence files, MovieLens): leave-one-out examples read back from the
written TFRecords (which item lands in which split with which history), history truncation, timestamp order,
genres and years from a latin-1 movies.dat, the written spec loading and transforming, and malformed lines
reported by file, line and column with nothing written."""

import collections
import glob
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import resolve
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from feature_spec.transform import time_gap_bucket
from tfx_pipeline.importers import __main__ as cli
from tfx_pipeline.importers import common, movielens, sequence
from tfx_pipeline.local_transform import TRANSFORM_OUTPUT, run_transform

FIXTURES = pathlib.Path(__file__).parent.parent / 'fixtures'
SEQUENCE = str(FIXTURES / 'sequence_sample.txt')
RATINGS = str(FIXTURES / 'ml-1m' / 'ratings.dat')
MOVIES = str(FIXTURES / 'ml-1m' / 'movies.dat')


def _rows(out_dir, split):
    """The rows of one written split, parsed with the spec's raw parsing spec: scalars as Python values, lists as
    Python lists, strings decoded."""
    spec = spec_lib.load(os.path.join(out_dir, common.SPEC_FILE))
    parsing = schema_lib.raw_feature_spec(spec)

    def value(tensor):
        if isinstance(tensor, tf.SparseTensor):
            return [v.decode() if isinstance(v, bytes) else v for v in tensor.values.numpy().tolist()]
        item = tensor.numpy()
        return item.decode() if isinstance(item, bytes) else item.item()

    return [{name: value(tensor) for name, tensor in tf.io.parse_single_example(record, parsing).items()}
            for record in tf.data.TFRecordDataset(os.path.join(out_dir, 'tfrecord', split, 'part-00000.tfrecord'))]


def _examples(out_dir, split, *names):
    return [tuple(row[name] for name in names) for row in _rows(out_dir, split)]


@pytest.fixture(name='sequence_data', scope='module')
def fixture_sequence_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('sequence'))
    return out, sequence.import_file(SEQUENCE, out, max_length=4)


@pytest.fixture(name='movielens_data', scope='module')
def fixture_movielens_data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('movielens'))
    return out, movielens.import_file(RATINGS, out, movies=MOVIES, max_length=5)


# ---------------------------------------------------------------------------------------------------------------
# The sequence files.


def test_sequence_leave_one_out_by_hand(sequence_data):
    out, metadata = sequence_data
    # The fixture: users 1 (items 10-17), 2 (20 21 22), 3 (30), 4 (40 41), then 5 (12 items) and 6 (5 items)
    # interleaved; max_length 4.
    assert _examples(out, 'test', 'user_id', 'item_id', 'hist_item_id') == [
        ('1', '17', ['13', '14', '15', '16']), ('2', '22', ['20', '21']),
        ('6', '11', ['60', '61', '62', '63']), ('5', '59', ['55', '56', '57', '58'])]
    assert _examples(out, 'eval', 'user_id', 'item_id', 'hist_item_id') == [
        ('1', '16', ['12', '13', '14', '15']), ('2', '21', ['20']),
        ('6', '63', ['60', '61', '62']), ('5', '58', ['54', '55', '56', '57'])]
    train = _examples(out, 'train', 'user_id', 'item_id', 'hist_item_id')
    assert [t for t in train if t[0] in '1234'] == [
        ('1', '11', ['10']), ('1', '12', ['10', '11']), ('1', '13', ['10', '11', '12']),
        ('1', '14', ['10', '11', '12', '13']), ('1', '15', ['11', '12', '13', '14']),
        ('4', '41', ['40'])]   # user 2: no train example (3 items); 3: none at all (1 item); 4: train only
    assert [t[1] for t in train if t[0] == '6'] == ['61', '62']
    assert ('5', '50', ['10']) in train and ('5', '57', ['53', '54', '55', '56']) in train
    assert {s: metadata['splits'][s]['rows'] for s in common.SPLITS} == {'train': 17, 'eval': 4, 'test': 4}
    assert all(metadata['splits'][s]['ctr'] == 1.0 for s in common.SPLITS)
    assert all(row['click'] == 1 for s in common.SPLITS for row in _rows(out, s))
    assert (metadata['users'], metadata['items'], metadata['interactions']) == (6, 28, 31)
    assert (metadata['short_users'], metadata['users_without_examples']) == (2, 1)
    assert json.loads(pathlib.Path(out, common.METADATA_FILE).read_text()) == metadata


def test_sequence_examples_equal_every_prefix_of_every_user(sequence_data):
    """Against a reference: each user's items in file order, every position k ≥ 1 one example with the k earlier
    items (the most recent 4), last → test, second-to-last → eval (users with 3 or more items)."""
    out, _ = sequence_data
    items = collections.defaultdict(list)
    for line in open(SEQUENCE):
        user, item = line.split()
        items[user].append(item)
    expected = {split: collections.Counter() for split in common.SPLITS}
    for user, sequence_ in items.items():
        n = len(sequence_)
        for k in range(1, n):
            split = 'test' if n >= 3 and k == n - 1 else 'eval' if n >= 3 and k == n - 2 else 'train'
            expected[split][(user, sequence_[k], tuple(sequence_[max(0, k - 4):k]))] += 1
    for split in common.SPLITS:
        written = collections.Counter((u, i, tuple(h)) for u, i, h in
                                      _examples(out, split, 'user_id', 'item_id', 'hist_item_id'))
        assert written == expected[split], split


def test_sequence_history_truncation_and_default_length(sequence_data, tmp_path):
    out, metadata = sequence_data
    histories = [row['hist_item_id'] for s in common.SPLITS for row in _rows(out, s)]
    assert max(map(len, histories)) == 4 and metadata['truncated_histories'] == 10   # user 5: 7, user 1: 3
    assert metadata['longest_history'] == 11
    full = sequence.import_file(SEQUENCE, str(tmp_path))   # default max_length 50: nothing truncated
    assert full['max_length'] == sequence.DEFAULT_MAX_LENGTH == 50 and full['truncated_histories'] == 0
    assert _examples(str(tmp_path), 'test', 'item_id', 'hist_item_id')[-1] == (
        '59', ['10', '50', '12', '51', '52', '53', '54', '55', '56', '57', '58'])
    spec = spec_lib.load(full['feature_spec'])
    assert spec.behavior.max_length == 50 and spec.behavior.length_feature == 'hist_length'


def test_sequence_spec(sequence_data):
    spec = spec_lib.load(sequence_data[1]['feature_spec'])
    assert spec.raw_columns == ('user_id', 'item_id', 'hist_item_id', 'click') and spec.labels == ('click',)
    assert spec['item_id'].vocabulary == spec['hist_item_id'].vocabulary == 'item_id'
    assert spec['user_id'].kind == 'key' and spec.gauc_group == 'user_id'
    assert spec['item_id'].group == 'item' and spec.context_columns == ('hist_item_id',)
    assert spec.embedding_dim(spec['item_id']) == 50 and spec.behavior.max_length == 4


@pytest.mark.pipeline
def test_sequence_spec_transforms(sequence_data):
    out, metadata = sequence_data
    spec = spec_lib.load(metadata['feature_spec'])
    outputs = run_transform(spec, {s: os.path.join(out, 'tfrecord', s, '*') for s in ('train', 'eval')},
                            os.path.join(out, 'transform'))
    tft_output = tft.TFTransformOutput(os.path.join(out, 'transform', TRANSFORM_OUTPUT))
    records = list(tf.data.TFRecordDataset(glob.glob(outputs['train']), compression_type='GZIP'))
    features = tf.io.parse_example(tf.stack(records), tft_output.transformed_feature_spec())
    tokens = _tokens(tft_output, 'item_id')
    lengths = features['hist_length'].numpy()
    written = collections.Counter(
        (tokens[item - 1], tuple(tokens[i - 1] for i in history[:length]))
        for item, history, length in zip(features['item_id'].numpy(), features['hist_item_id'].numpy(), lengths))
    assert written == collections.Counter((i, tuple(h)) for i, h in _examples(out, 'train', 'item_id',
                                                                               'hist_item_id'))
    assert features['hist_item_id'].shape == (17, 4) and set(features['click'].numpy()) == {1.0}


def test_sequence_string_ids_and_any_whitespace(tmp_path):
    source = tmp_path / 'items.txt'
    source.write_text('A1\tB007\nA1  B7\n\n  A1 B007  \r\nA1 Bx\nA2 B7\nA2 B8\nA2 B9\n')
    metadata = sequence.import_file(str(source), str(tmp_path / 'out'))
    out = str(tmp_path / 'out')
    assert _examples(out, 'test', 'user_id', 'item_id', 'hist_item_id') == [
        ('A1', 'Bx', ['B007', 'B7', 'B007']), ('A2', 'B9', ['B7', 'B8'])]
    assert _examples(out, 'train', 'item_id', 'hist_item_id') == [('B7', ['B007'])]   # 007 and 7 differ
    assert metadata['items'] == 5


# ---------------------------------------------------------------------------------------------------------------
# MovieLens.


def _ratings_by_time():
    """user → [(movie, timestamp)] of the fixture, sorted by timestamp, ties in file order."""
    ratings = collections.defaultdict(list)
    for line_number, line in enumerate(open(RATINGS)):
        user, movie, _, timestamp = map(int, line.split('::'))
        ratings[user].append((timestamp, line_number, movie))
    return {user: [(m, t) for t, _, m in sorted(rows)] for user, rows in ratings.items()}


def test_movielens_orders_each_user_by_timestamp_ties_in_file_order(movielens_data):
    out, metadata = movielens_data
    ordered = _ratings_by_time()
    first_lines = [int(line.split('::')[1]) for line in open(RATINGS)][:3]
    assert first_lines == [1193, 661, 914] and [m for m, _ in ordered[1][:3]] == [3408, 2804, 1193]   # unsorted
    # User 1: 595 (line 11) and 2687 (line 17) share 978824268, 2355 is the latest.
    assert [m for m, _ in ordered[1][-3:]] == [595, 2687, 2355]
    test = {row['user_id']: row for row in _rows(out, 'test')}
    evaluation = {row['user_id']: row for row in _rows(out, 'eval')}
    assert (test[1]['item_id'], test[1]['hist_item_id'][-1]) == (2355, 2687)
    assert (evaluation[1]['item_id'], evaluation[1]['hist_item_id'][-1]) == (2687, 595)
    # User 4: 73 and 1214 share 978294260; max_length 5.
    assert test[4]['item_id'] == 2951 and test[4]['request_time'] == 978294282
    assert test[4]['hist_item_id'] == [3468, 260, 1036, 73, 1214]
    assert test[4]['hist_time'] == [978294008, 978294199, 978294230, 978294260, 978294260]
    assert evaluation[4]['item_id'] == 1214 and evaluation[4]['hist_item_id'] == [1210, 3468, 260, 1036, 73]
    assert set(test) == set(evaluation) == {1, 2, 4}   # user 3 has 2 ratings: train only
    for split in common.SPLITS:  # every example against the timestamp order
        for row in _rows(out, split):
            movies = [m for m, _ in ordered[row['user_id']]]
            k = movies.index(row['item_id'])
            assert row['hist_item_id'] == movies[max(0, k - 5):k]
            assert row['hist_time'] == [t for _, t in ordered[row['user_id']][max(0, k - 5):k]]
            assert row['request_time'] == ordered[row['user_id']][k][1]
            assert sorted(row['hist_time'] + [row['request_time']]) == row['hist_time'] + [row['request_time']]
    assert {s: metadata['splits'][s]['rows'] for s in common.SPLITS} == {'train': 29, 'eval': 3, 'test': 3}
    assert (metadata['users'], metadata['items'], metadata['interactions'], metadata['ratings']) == (4, 39, 39, 39)
    assert (metadata['short_users'], metadata['movies_listed'], metadata['unlisted_movies']) == (1, 42, 0)
    assert _examples(out, 'train', 'user_id', 'item_id', 'hist_item_id')[-5:-4] == [(3, 1641, [3421])]


def test_movielens_genre_and_year_from_a_latin1_movies_file(movielens_data):
    out, _ = movielens_data
    assert 'Misérables'.encode('latin-1') in pathlib.Path(MOVIES).read_bytes()
    test = {row['user_id']: row for row in _rows(out, 'test')}[4]
    assert (test['genre'], test['year']) == ('Action', 1964)   # 2951 Fistful of Dollars: Action|Western
    assert test['hist_genre'] == ['Drama', 'Action', 'Action', 'Drama', 'Action']   # 73: Misérables, Drama|Musical
    assert test['hist_year'] == [1961, 1977, 1988, 1995, 1979]
    spec = spec_lib.load(os.path.join(out, common.SPEC_FILE))
    assert spec['genre'].vocabulary == spec['hist_genre'].vocabulary == 'genre'
    assert spec['year'].vocabulary == spec['hist_year'].vocabulary == 'year'
    gaps = spec['hist_time_gap']
    assert (gaps.source, gaps.transform['reference'], gaps.transform['num_buckets']) == ('hist_time', 'request_time',
                                                                                         28)
    assert set(spec.candidate_columns) == {'item_id', 'genre', 'year'}
    assert set(spec.context_columns) == {'hist_item_id', 'hist_genre', 'hist_year', 'hist_time', 'request_time'}


def test_movielens_min_rating_unlisted_movies_no_year_and_no_movies_file(tmp_path):
    movies = tmp_path / 'movies.dat'
    movies.write_bytes('1::Toy Story (1995)::Animation|Children\'s|Comedy\n2::Untitled::\n'
                       '3::Café (2001)::(no genres listed)\n4::Film::Film Noir|Drama\n'.encode('latin-1'))
    ratings = tmp_path / 'ratings.dat'
    ratings.write_text('7::1::5::40\n7::2::4::10\n7::3::2::20\n7::4::4::30\n7::9::4::50\n8::1::1::5\n8::2::5::6\n')
    out = str(tmp_path / 'out')
    metadata = movielens.import_file(str(ratings), out, movies=str(movies), min_rating=4)
    assert (metadata['ratings'], metadata['interactions'], metadata['filtered_ratings']) == (7, 5, 2)
    assert metadata['unlisted_movies'] == 1 and metadata['users'] == 2   # movie 9; user 8 keeps only movie 2
    test = _rows(out, 'test')[0]
    assert (test['item_id'], test['genre'], test['year']) == (9, movielens.MISSING_GENRE, movielens.MISSING_YEAR)
    assert test['hist_item_id'] == [2, 4, 1] and test['hist_genre'] == ['__missing__', 'Film_Noir', 'Animation']
    assert test['hist_year'] == [0, 0, 1995]
    plain = movielens.import_file(str(ratings), str(tmp_path / 'plain'), min_rating=4)
    spec = spec_lib.load(plain['feature_spec'])
    assert spec.raw_columns == ('user_id', 'item_id', 'request_time', 'hist_item_id', 'hist_time', 'click')
    assert _examples(str(tmp_path / 'plain'), 'test', 'item_id', 'hist_item_id', 'hist_time') == [
        (9, [2, 4, 1], [10, 30, 40])]
    assert plain['movies'] is None and plain['max_length'] == movielens.DEFAULT_MAX_LENGTH == 200


@pytest.mark.pipeline
def test_movielens_spec_transforms_and_feeds_a_sequence_model(movielens_data):
    out, metadata = movielens_data
    spec = spec_lib.load(metadata['feature_spec'])
    patterns = {split: os.path.join(out, 'tfrecord', split, '*') for split in common.SPLITS}
    outputs = run_transform(spec, patterns, os.path.join(out, 'transform'))
    tft_output = tft.TFTransformOutput(os.path.join(out, 'transform', TRANSFORM_OUTPUT))
    transformed = {}
    for split in ('train', 'test'):
        records = list(tf.data.TFRecordDataset(glob.glob(outputs[split]), compression_type='GZIP'))
        transformed[split] = tf.io.parse_example(tf.stack(records), tft_output.transformed_feature_spec())
    features, train = transformed['train'], _rows(out, 'train')
    tokens = [int(token) for token in _tokens(tft_output, 'item_id')]   # id - 1 = line of the vocabulary file
    written = collections.Counter()
    for k, item in enumerate(features['item_id'].numpy()):
        length = int(features['hist_length'][k])
        assert not features['hist_item_id'].numpy()[k][length:].any()    # padded with 0
        written[(tokens[item - 1], tuple(tokens[i - 1] for i in features['hist_item_id'].numpy()[k][:length]),
                 tuple(features['hist_time_gap'].numpy()[k][:length]))] += 1
    expected = collections.Counter(
        (row['item_id'], tuple(row['hist_item_id']), tuple(time_gap_bucket(
            tf.constant([row['request_time'] - t for t in row['hist_time']], tf.int64), 28).numpy()))
        for row in _rows(out, 'train'))
    assert written == expected
    np.testing.assert_array_equal(features['click'].numpy(), np.ones(29, np.float32))   # the constant label
    # Test targets only ever seen as a test target are OOV (the vocabulary is the train split's): 2355 of user 1.
    assert 2355 not in tokens and len(tokens) + 1 in transformed['test']['item_id'].numpy()
    # One vocabulary over the targets' and the histories' genres (years).
    assert set(_tokens(tft_output, 'genre')) == {g for r in train for g in [r['genre']] + r['hist_genre']}
    assert {int(y) for y in _tokens(tft_output, 'year')} == {y for r in train for y in [r['year']] + r['hist_year']}
    inputs = resolve.model_inputs_from(spec, tft_output)
    assert {f.name: f.query for f in inputs.of_kind('sequence')} == {
        'hist_item_id': 'item_id', 'hist_genre': 'genre', 'hist_year': 'year', 'hist_time_gap': None}
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    features.pop('click')
    model = registry.build('din', inputs, {'hidden_units': (8,)},
                           frequencies=resolve.table_frequencies(spec, tft_output))
    probabilities = model(features, training=False)['probabilities'].numpy()
    assert probabilities.shape == (29,) and np.all((probabilities > 0) & (probabilities < 1))


def _tokens(tft_output, name):
    """The tokens of a ``<count> <token>`` vocabulary, in id order."""
    return [line.decode().split(' ', 1)[1] for line in tft_output.vocabulary_by_name(name)]


# ---------------------------------------------------------------------------------------------------------------
# Command line, errors and the encoder.


@pytest.mark.parametrize('fmt,ratings,movies,where,line,column', [
    ('sequence', '1 10\n1 11\n1\n', None, 'input', 3, None),
    ('sequence', '1 10\n\n1 11 12\n', None, 'input', 3, None),
    ('movielens', '1::1193::5::978300760\n1::661::3\n', None, 'input', 2, None),                # field count
    ('movielens', '1::1193::5::978300760\n1::661::3::97830210x\n', None, 'input', 2, 'Timestamp'),
    ('movielens', '1::1193::5::978300760\n1,661,3,978302109\n', None, 'input', 2, None),       # no '::'
    ('movielens', '1::1193::5::978300760\n1::661:3::978302109\n', None, 'input', 2, None),     # one ':'
    ('movielens', 'u1::1193::5::978300760\n', None, 'input', 1, 'UserID'),
    ('movielens', '1::1193::five::978300760\n', None, 'input', 1, 'Rating'),
    ('movielens', '1::1193::5::1\n', '1193::Cuckoo (1975)::Drama\n1193::Cuckoo (1975)\n', 'movies', 2, None),
    ('movielens', '1::1193::5::1\n', '1193::Cuckoo (1975)::Drama\nx::Café (1975)::Drama\n', 'movies', 2, 'MovieID'),
    ('movielens', '1::1193::5::1\n', '1193::Cuckoo (1975)::Drama\n1193::Again (1975)::Drama\n', 'movies', 2,
     'MovieID'),
])
def test_cli_errors_name_file_line_and_column(tmp_path, capsys, fmt, ratings, movies, where, line, column):
    paths = {'input': tmp_path / 'ratings.dat', 'movies': tmp_path / 'movies.dat'}
    paths['input'].write_text(ratings)
    argv = [fmt, '--input', str(paths['input']), '--out', str(tmp_path / 'out')]
    if movies is not None:
        paths['movies'].write_bytes(movies.encode('latin-1'))
        argv += ['--movies', str(paths['movies'])]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'error: {paths[where]}:{line}:'), error
    assert (f': column {column}: ' in error) if column else (': column ' not in error), error
    assert ("no '::' in the line" in error) == (',' in ratings)
    assert not (tmp_path / 'out').exists()   # checked before anything is written


def test_cli_too_few_items_and_missing_files_write_nothing(tmp_path, capsys):
    source = tmp_path / 'short.txt'
    source.write_text('1 10\n1 11\n2 20\n')   # no user with 3 items: no eval or test example
    assert cli.main(['sequence', '--input', str(source), '--out', str(tmp_path / 'out')]) == 2
    assert 'every split needs one' in capsys.readouterr().err and not (tmp_path / 'out').exists()
    assert cli.main(['movielens', '--input', RATINGS, '--movies', str(tmp_path / 'absent.dat'), '--out',
                     str(tmp_path / 'out')]) == 2
    assert 'absent.dat: no such file' in capsys.readouterr().err and not (tmp_path / 'out').exists()


def test_cli_imports_and_prints_one_json_line(tmp_path, capsys):
    assert cli.main(['movielens', '--input', RATINGS, '--movies', MOVIES, '--out', str(tmp_path / 'ml'),
                     '--max_length', '3', '--min_rating', '4']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metadata = json.loads((tmp_path / 'ml' / common.METADATA_FILE).read_text())
    assert summary['rows'] == {s: metadata['splits'][s]['rows'] for s in common.SPLITS}
    assert metadata['min_rating'] == 4 and metadata['max_length'] == 3 and metadata['filtered_ratings'] == 10
    assert summary['ctr'] == {'train': 1.0, 'eval': 1.0, 'test': 1.0}
    assert cli.main(['sequence', '--input', SEQUENCE, '--out', str(tmp_path / 'seq'), '--min_frequency', '2']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['rows'] == {'train': 17, 'eval': 4, 'test': 4}
    assert spec_lib.load(summary['feature_spec']).vocabularies['item_id'].min_frequency == 2


def test_record_encoder_bytes_equal_serialize_example():
    columns = {'i': 'int64', 's': 'string', 'f': 'float32', 'ids': 'int64', 'names': 'string', 'none': 'int64',
               'no_names': 'string', 'values': 'float32'}
    encoder = sequence.RecordEncoder(columns)
    element = sequence.RecordEncoder.element
    for row in ({'i': -3, 's': 'héllo', 'f': 1.5, 'ids': [3, -1, 2 ** 40], 'names': ['a', '', 'Children\'s'],
                 'none': [], 'no_names': [], 'values': [0.5, -2.0]},
                {'i': 2 ** 63 - 1, 's': '', 'f': -0.0, 'ids': [0], 'names': ['x' * 300], 'none': [],
                 'no_names': [], 'values': []}):
        values = [b''.join(element(columns[name], v) for v in (row[name] if isinstance(row[name], list) else
                                                               [row[name]])) for name in columns]
        assert encoder.encode(values) == common.serialize_example(row, columns)

"""The synthetic click log (tfx_pipeline.data): ground truth, time semantics, determinism and the file formats."""

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from rec_models.metrics import auc
from tfx_pipeline import data
from tfx_pipeline.data import __main__ as cli

TINY = data.PRESETS['tiny']


@pytest.fixture(scope='module')
def dataset():
    return data.generate(TINY)


@pytest.fixture(scope='module')
def rows(dataset):
    """All splits concatenated (train, eval, test)."""
    return {name: _concat([dataset.splits[s][name] for s in data.SPLITS]) for name in data.COLUMNS}


def _concat(columns):
    if isinstance(columns[0], data.Ragged):
        return data.Ragged(np.concatenate([c.values for c in columns]),
                           np.concatenate([c.row_lengths for c in columns]))
    return np.concatenate(columns)


def _assert_same_splits(a, b):
    for name in data.SPLITS:
        for column in data.COLUMNS:
            x, y = a[name][column], b[name][column]
            if isinstance(x, data.Ragged):
                np.testing.assert_array_equal(x.values, y.values, err_msg=f'{name}/{column}')
                np.testing.assert_array_equal(x.row_lengths, y.row_lengths, err_msg=f'{name}/{column}')
            else:
                np.testing.assert_array_equal(x, y, err_msg=f'{name}/{column}')


def test_same_seed_same_data_other_seed_other_data(dataset):
    _assert_same_splits(dataset.splits, data.generate(TINY).splits)
    other = data.generate(dataclasses.replace(TINY, seed=1)).splits['train']
    assert not np.array_equal(other['item_id'][:1000], dataset.splits['train']['item_id'][:1000])


def test_columns_and_types(dataset):
    for split in dataset.splits.values():
        assert set(split) == set(data.COLUMNS)
        for name in data.INT_COLUMNS:
            assert split[name].dtype == np.int64, name
        for name in data.FLOAT_COLUMNS:
            assert split[name].dtype == np.float32, name
        for group in data.LIST_GROUPS:
            for name in group:
                assert split[name].values.dtype == np.int64, name
                np.testing.assert_array_equal(split[name].row_lengths, split[group[0]].row_lengths, err_msg=name)


def test_history_is_strictly_before_the_request_oldest_first_and_capped(rows):
    lengths = rows['hist_time'].row_lengths
    row_of_value = np.repeat(np.arange(lengths.size), lengths)
    times = rows['hist_time'].values
    assert lengths.max() <= TINY.history_length
    assert np.all(times < rows['request_time'][row_of_value])
    same_row = row_of_value[1:] == row_of_value[:-1]
    assert np.all(np.diff(times)[same_row] >= 0)
    assert (lengths == 0).any() and (lengths == TINY.history_length).any()


def test_query_history_is_strictly_before_the_request_capped_and_the_query_marks_a_search(rows):
    lengths = rows['hist_query'].row_lengths
    row_of_value = np.repeat(np.arange(lengths.size), lengths)
    times = rows['hist_query_time'].values
    assert np.all(times < rows['request_time'][row_of_value])
    same_row = row_of_value[1:] == row_of_value[:-1]
    assert np.all(np.diff(times)[same_row] > 0)   # one query per session, sessions start at distinct times
    assert lengths.max() == TINY.query_history_length and (lengths == 0).any()
    assert np.all(rows['hist_query'].values >= 1)
    assert 0.25 < np.mean(rows['query'] > 0) < 0.55   # ~search_session_share of the requests
    assert rows['query'].max() <= TINY.num_categories * TINY.query_terms_per_category
    pages = rows['query'].reshape(-1, TINY.page_size)
    assert np.all(pages == pages[:, :1])   # one query per request


def test_the_query_is_evidence_of_the_sessions_interest(rows):
    """Impressions whose category is the query's are clicked more often than the other impressions of searches."""
    searched = rows['query'] > 0
    query_category = (rows['query'] - 1) // TINY.query_terms_per_category
    matches = searched & (rows['category'] == query_category)
    assert rows['click'][matches].mean() > 1.5 * rows['click'][searched & ~matches].mean()


def test_page_context_is_the_items_above_on_the_same_page(rows):
    context = rows['context_item_id']
    np.testing.assert_array_equal(context.row_lengths, rows['position'])
    splits = context.row_splits
    for r in range(0, rows['position'].size, 97):
        first = r - rows['position'][r]
        assert np.all(rows['request_id'][first:r] == rows['request_id'][r])
        np.testing.assert_array_equal(context.values[splits[r]:splits[r + 1]], rows['item_id'][first:r])


def test_unclicked_impressions_match_a_loop_over_the_users_earlier_requests(rows):
    splits = rows['unclicked_item_id'].row_splits
    assert rows['unclicked_item_id'].row_lengths.max() == TINY.unclicked_history_length
    for r in range(0, rows['user_id'].size, 61):
        earlier = np.flatnonzero((rows['user_id'] == rows['user_id'][r]) & (rows['click'] == 0)
                                 & (rows['request_time'] < rows['request_time'][r]))
        earlier = earlier[np.lexsort((rows['position'][earlier], rows['request_time'][earlier]))]
        expected = earlier[len(earlier) - min(len(earlier), TINY.unclicked_history_length):]
        np.testing.assert_array_equal(rows['unclicked_item_id'].values[splits[r]:splits[r + 1]],
                                      rows['item_id'][expected])
        np.testing.assert_array_equal(rows['unclicked_time'].values[splits[r]:splits[r + 1]],
                                      rows['request_time'][expected])


def test_searches_have_their_own_stream_and_change_no_other_column(dataset):
    other = data.generate(dataclasses.replace(TINY, search_session_share=0.9, query_terms_per_category=2)).splits
    searches = {'query', 'hist_query', 'hist_query_time'}
    for name in data.SPLITS:
        for column in set(data.COLUMNS) - searches:
            x, y = dataset.splits[name][column], other[name][column]
            np.testing.assert_array_equal(x.values if isinstance(x, data.Ragged) else x,
                                          y.values if isinstance(y, data.Ragged) else y, err_msg=column)
        assert np.mean(other[name]['query'] > 0) > np.mean(dataset.splits[name]['query'] > 0) + 0.2


def _same_session_share(rows, gap_seconds=1800):
    """Share of consecutive history behaviours under ``gap_seconds`` apart (the same session) with one category,
    and that share for behaviours further apart."""
    category, time = rows['hist_category'], rows['hist_time']
    splits = np.cumsum(category.row_lengths)[:-1]
    same, gaps = [], []
    for c, t in zip(np.split(category.values, splits), np.split(time.values, splits)):
        same.append(c[1:] == c[:-1])
        gaps.append(np.diff(t))
    same, gaps = np.concatenate(same), np.concatenate(gaps)
    return np.mean(same[gaps < gap_seconds]), np.mean(same[gaps >= gap_seconds])


def test_session_focus_makes_sessions_homogeneous_from_its_own_stream(dataset):
    focused = data.generate(dataclasses.replace(TINY, session_focus=0.8))
    within, across = _same_session_share(focused.splits['train'])
    base_within, base_across = _same_session_share(dataset.splits['train'])
    assert within > base_within + 0.2 and within > across + 0.3
    assert across < base_across + 0.1   # the focus changes from session to session
    # The focus draws from its own stream: everything drawn before the categories is unchanged.
    for column in ('user_id', 'age_bucket', 'gender', 'city', 'request_time', 'hist_time', 'device', 'position'):
        x, y = dataset.splits['train'][column], focused.splits['train'][column]
        np.testing.assert_array_equal(x.values if isinstance(x, data.Ragged) else x,
                                      y.values if isinstance(y, data.Ragged) else y, err_msg=column)
    assert 0.5 < focused.metadata['bayes_auc'] < 1


def test_splits_are_disjoint_and_ordered_in_time(dataset):
    splits = [dataset.splits[name] for name in data.SPLITS]
    assert all(s['click'].size > 0 for s in splits)
    horizon = TINY.horizon_days * 86_400
    cuts = TINY.start_time + np.array([TINY.train_fraction, TINY.train_fraction + TINY.eval_fraction]) * horizon
    assert splits[0]['request_time'].max() < cuts[0] <= splits[1]['request_time'].min()
    assert splits[1]['request_time'].max() < cuts[1] <= splits[2]['request_time'].min()
    ids = np.concatenate([s['impression_id'] for s in splits])
    assert np.unique(ids).size == ids.size
    requests = [set(s['request_id'].tolist()) for s in splits]
    assert not (requests[0] & requests[1] or requests[1] & requests[2] or requests[0] & requests[2])


def test_pages_have_all_positions_and_context(rows):
    _, per_request = np.unique(rows['request_id'], return_counts=True)
    assert np.all(per_request == TINY.page_size)
    assert rows['position'].min() == 0 and rows['position'].max() == TINY.page_size - 1
    np.testing.assert_array_equal(rows['hour'], rows['request_time'] // 3600 % 24)
    assert set(np.unique(rows['gender'])) == {0, 1, 2} and set(np.unique(rows['device'])) <= {0, 1, 2}
    assert rows['age_bucket'].min() >= 0 and rows['age_bucket'].max() <= 6
    assert (rows['price'] > 0).all() and (rows['purchase_power'] > 0).all() and (rows['bid'] > 0).all()


def test_label_hierarchy(rows):
    assert set(np.unique(rows['click'])) == {0, 1}
    for label in ('cart', 'purchase', 'satisfied'):   # every outcome follows a click
        assert np.all(rows[label] <= rows['click']) and rows[label].sum() > 0, label
    bought_without_cart = (rows['purchase'] == 1) & (rows['cart'] == 0)
    assert bought_without_cart.any()   # a purchase may follow an O-Action (ESM2's funnel)


OUTCOMES = ('cart', 'purchase', 'satisfied', 'click_if_examined', 'conversion_if_clicked', 'page_dwell', 'true_cvr',
            'true_satisfaction')


def test_the_funnel_follows_its_equations(rows, dataset):
    config = TINY
    clicked = rows['click'] == 1
    # Purchase after a D-Action is more likely than after an O-Action, as p_buy|D's bias says.
    after_d = rows['purchase'][rows['cart'] == 1].mean()
    after_o = rows['purchase'][clicked & (rows['cart'] == 0)].mean()
    assert after_d > 3 * after_o
    # The conversion draws follow true_cvr (binomial tolerance), and the true CVR is the funnel's mixture in [0, 1].
    assert abs(rows['conversion_if_clicked'].mean() - rows['true_cvr'].mean()) < 4 * np.sqrt(0.25 / rows['click'].size)
    assert abs(rows['purchase'][clicked].mean() - rows['true_cvr'][clicked].mean()) < 4 * np.sqrt(0.25 / clicked.sum())
    assert auc(rows['conversion_if_clicked'], rows['true_cvr']) > 0.6
    # Counterfactual clicks follow the relevance (examination 1): more clicks than the examined log has.
    tolerance = 4 * np.sqrt(0.25 / rows['click'].size)
    assert abs(rows['click_if_examined'].mean() - rows['true_relevance'].mean()) < tolerance
    assert rows['click_if_examined'].mean() > rows['click'].mean()
    # Satisfaction is related to relevance with the knob's correlation; the dwell reads the relevance.
    assert 0.2 < np.corrcoef(rows['true_satisfaction'], rows['true_relevance'])[0, 1] < 0.8
    assert auc(rows['click'], rows['page_dwell']) > 0.65
    assert config.satisfaction_correlation == 0.5


def test_outcomes_have_their_own_stream_and_change_no_other_column(dataset):
    other = data.generate(dataclasses.replace(TINY, satisfaction_correlation=0.9, privileged_noise=3.0,
                                              cart_bias=-1.0)).splits
    for name in data.SPLITS:
        for column in set(data.COLUMNS) - set(OUTCOMES):
            x, y = dataset.splits[name][column], other[name][column]
            np.testing.assert_array_equal(x.values if isinstance(x, data.Ragged) else x,
                                          y.values if isinstance(y, data.Ragged) else y, err_msg=column)
        assert not np.array_equal(dataset.splits[name]['cart'], other[name]['cart'])
    assert np.corrcoef(other['train']['true_satisfaction'], other['train']['true_relevance'])[0, 1] > \
        np.corrcoef(dataset.splits['train']['true_satisfaction'], dataset.splits['train']['true_relevance'])[0, 1]


def test_negative_sampling_keeps_every_click_and_a_share_of_the_training_negatives(dataset):
    sampled = data.generate(dataclasses.replace(TINY, negative_sampling_rate=0.25))
    train, full = sampled.splits['train'], dataset.splits['train']
    assert train['click'].sum() == full['click'].sum()
    kept = np.isin(full['impression_id'], train['impression_id'])
    assert kept[full['click'] == 1].all()
    assert abs(kept[full['click'] == 0].mean() - 0.25) < 0.03
    rows = np.flatnonzero(kept)   # a kept row keeps its history
    np.testing.assert_array_equal(train['hist_item_id'].row_lengths, full['hist_item_id'].row_lengths[rows])
    np.testing.assert_array_equal(train['hist_item_id'].to_padded(60), full['hist_item_id'].to_padded(60)[rows])
    for split in ('eval', 'test'):
        np.testing.assert_array_equal(sampled.splits[split]['impression_id'], dataset.splits[split]['impression_id'])
    assert sampled.metadata['config']['negative_sampling_rate'] == 0.25
    assert sampled.metadata['bayes_auc'] == dataset.metadata['bayes_auc']


def test_true_ctr_is_examination_times_relevance(rows):
    np.testing.assert_array_equal(rows['true_ctr'], rows['true_examination'] * rows['true_relevance'])
    expected = ((1.0 + rows['position']) ** -TINY.position_decay).astype(np.float32)
    np.testing.assert_allclose(rows['true_examination'], expected, rtol=1e-6)


def test_click_rate_matches_true_ctr(rows):
    p = rows['true_ctr'].astype(np.float64)
    standard_error = np.sqrt(np.sum(p * (1 - p))) / p.size
    assert abs(rows['click'].mean() - p.mean()) < 4 * standard_error
    assert 0.03 < rows['click'].mean() < 0.12


def test_metadata_bayes_auc_is_auc_of_true_ctr_on_test(dataset):
    test, meta = dataset.splits['test'], dataset.metadata
    assert meta['bayes_auc'] == auc(test['click'], test['true_ctr'])
    assert meta['bayes_auc_eval'] == auc(dataset.splits['eval']['click'], dataset.splits['eval']['true_ctr'])
    assert meta['relevance_auc'] == auc(test['click'], test['true_relevance'])
    assert 0.70 < meta['bayes_auc'] < 0.85
    for name in data.SPLITS:
        assert meta['splits'][name]['rows'] == dataset.splits[name]['click'].size
        assert meta['splits'][name]['ctr'] == pytest.approx(dataset.splits[name]['click'].mean())


def test_some_test_items_never_appear_in_train(dataset):
    unseen = ~np.isin(dataset.splits['test']['item_id'], dataset.splits['train']['item_id'])
    assert unseen.any()
    assert dataset.metadata['cold_start_item_share_test'] == pytest.approx(unseen.mean())


def _recency_scores(split, shuffled_rows=None):
    """Per row: Σ_j w_type 1[hist_category_j = category] exp(−Δt_j / τ) and the same without the decay."""
    category = split['hist_category'].to_padded(pad_value=-1)
    time = split['hist_time'].to_padded()
    weight = np.array([1.0, 2.0, 3.0])[split['hist_behavior_type'].to_padded()]
    if shuffled_rows is not None:
        category, time, weight = category[shuffled_rows], time[shuffled_rows], weight[shuffled_rows]
    gap_days = np.maximum(split['request_time'][:, None] - time, 0) / 86_400
    match = weight * (category == split['category'][:, None])
    return (match * np.exp(-gap_days / TINY.decay_days)).sum(axis=1), match.sum(axis=1)


def test_clicks_follow_recent_same_category_behaviours(dataset):
    """The history signal is real and depends on recency, not only on counts."""
    train = dataset.splits['train']
    decayed, counted = _recency_scores(train)
    shuffled, _ = _recency_scores(train, np.random.default_rng(0).permutation(train['click'].size))
    decayed_auc = auc(train['click'], decayed)
    assert decayed_auc > 0.68
    assert decayed_auc > auc(train['click'], counted) + 0.015
    assert auc(train['click'], shuffled) < 0.56


def test_padded_keeps_the_most_recent_left_aligned():
    column = data.Ragged(np.array([1, 2, 3, 4, 5, 6], dtype=np.int64), np.array([3, 0, 3]))
    np.testing.assert_array_equal(data.padded(column), [[1, 2, 3], [0, 0, 0], [4, 5, 6]])
    np.testing.assert_array_equal(data.padded(column, 2, pad_value=-1), [[2, 3], [-1, -1], [5, 6]])


def test_chunks_of_users_give_unique_ids_and_all_rows():
    config = dataclasses.replace(TINY, users_per_chunk=250)
    chunked = data.generate(config)
    ids = np.concatenate([chunked.splits[name]['impression_id'] for name in data.SPLITS])
    assert ids.size == TINY.num_impressions and np.unique(ids).size == ids.size
    assert 0.70 < chunked.metadata['bayes_auc'] < 0.88


def test_invalid_config_names_the_knob():
    with pytest.raises(data.ConfigError, match='drift'):
        dataclasses.replace(TINY, drift=1.5).validate()
    with pytest.raises(data.ConfigError, match='session_focus'):
        dataclasses.replace(TINY, session_focus=-0.1).validate()
    with pytest.raises(data.ConfigError, match='eval_fraction'):
        dataclasses.replace(TINY, train_fraction=0.95, eval_fraction=0.1).validate()
    with pytest.raises(data.ConfigError, match='num_impressions'):
        data.generate(dataclasses.replace(TINY, num_impressions=10_000_000))


def test_generation_does_not_import_tensorflow():
    code = ('import sys; from tfx_pipeline import data; data.generate(data.PRESETS["tiny"]); '
            'assert "tensorflow" not in sys.modules, "tensorflow imported"')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_csv_round_trip_and_byte_identical_rewrite(dataset, tmp_path):
    data.write(dataset, tmp_path / 'a', formats=('csv',), num_shards=2)
    data.write(data.generate(TINY), tmp_path / 'b', formats=('csv',), num_shards=2)
    for name in data.SPLITS:
        paths = sorted((tmp_path / 'a' / 'csv' / name).glob('part-*.csv'))
        assert len(paths) == 2
        assert all(p.read_bytes() == (tmp_path / 'b' / p.relative_to(tmp_path / 'a')).read_bytes() for p in paths)
        records = [record for path in paths for record in csv.DictReader(path.open(newline=''))]
        split = dataset.splits[name]
        for column in data.COLUMNS:
            text = [record[column] for record in records]
            if column in data.LIST_COLUMNS:
                values = [np.array(t.split(), dtype=np.int64) for t in text]
                np.testing.assert_array_equal([v.size for v in values], split[column].row_lengths)
                np.testing.assert_array_equal(np.concatenate(values), split[column].values)
            elif column in data.FLOAT_COLUMNS:
                np.testing.assert_array_equal(np.array(text, dtype=np.float64).astype(np.float32), split[column])
            else:
                np.testing.assert_array_equal(np.array(text, dtype=np.int64), split[column])
    metadata = json.loads((tmp_path / 'a' / 'metadata.json').read_text())
    assert metadata['bayes_auc'] == dataset.metadata['bayes_auc']
    assert metadata['config'] == dataclasses.asdict(TINY)


def test_tfrecord_round_trip_with_empty_histories(dataset, tmp_path):
    tf = pytest.importorskip('tensorflow')
    data.write(dataset, tmp_path, formats=('tfrecord',))
    spec = {name: tf.io.VarLenFeature(tf.float32 if name in data.FLOAT_COLUMNS else tf.int64)
            for name in data.COLUMNS}
    for name in data.SPLITS:
        split = dataset.splits[name]
        files = sorted(str(p) for p in (tmp_path / 'tfrecord' / name).glob('part-*.tfrecord'))
        records = [r.numpy() for r in tf.data.TFRecordDataset(files)]
        assert len(records) == split['click'].size
        parsed = tf.io.parse_example(records, spec)
        for column in data.COLUMNS:
            values = parsed[column].values.numpy()
            lengths = np.bincount(parsed[column].indices.numpy()[:, 0], minlength=len(records))
            expected = split[column]
            if column in data.LIST_COLUMNS:
                np.testing.assert_array_equal(lengths, expected.row_lengths, err_msg=column)
                np.testing.assert_array_equal(values, expected.values, err_msg=column)
            else:
                np.testing.assert_array_equal(lengths, 1, err_msg=column)
                np.testing.assert_array_equal(values, expected, err_msg=column)
    train = dataset.splits['train']
    empty = int(np.flatnonzero(train['hist_item_id'].row_lengths == 0)[0])
    files = sorted(str(p) for p in (tmp_path / 'tfrecord' / 'train').glob('part-*.tfrecord'))
    record = next(iter(tf.data.TFRecordDataset(files).skip(empty))).numpy()
    feature = tf.train.Example.FromString(record).features.feature
    for column in data.LIST_COLUMNS:
        assert feature[column].WhichOneof('kind') == 'int64_list' and not feature[column].int64_list.value


def test_cli_prints_a_json_summary_and_rejects_bad_arguments(tmp_path, capsys):
    assert cli.main(['--preset', 'tiny', '--out', str(tmp_path), '--formats', 'csv', '--seed', '3']) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(summary['rows'].values()) == TINY.num_impressions and 0.5 < summary['bayes_auc'] < 1
    assert (tmp_path / 'metadata.json').exists() and not (tmp_path / 'tfrecord').exists()
    for argv, argument in ((['--drift', '2'], '--drift'), (['--formats', 'parquet'], '--formats'),
                           (['--num_impressions', '0'], '--num_impressions'),
                           (['--num_impressions', '100000000'], '--num_impressions')):
        with pytest.raises(SystemExit):
            cli.main(['--preset', 'tiny', '--out', str(tmp_path / 'bad')] + argv)
        assert argument in capsys.readouterr().err


def test_item_feed_lists_every_item_with_the_side_features_the_log_shows(dataset, rows, tmp_path):
    feed = dataset.item_feed
    np.testing.assert_array_equal(feed['item_id'], np.arange(TINY.num_items))   # every item, by id
    shown = rows['item_id']
    for column in ('category', 'brand', 'price'):
        np.testing.assert_array_equal(feed[column][shown], rows[column], err_msg=column)
    assert len(np.setdiff1d(feed['item_id'], dataset.splits['train']['item_id'])) > 0   # never shown in training
    data.write(dataset, tmp_path, formats=('csv',), num_shards=1)
    with (tmp_path / 'csv' / 'items' / 'part-00000.csv').open(newline='') as f:
        records = list(csv.DictReader(f))
    assert [int(r['item_id']) for r in records] == feed['item_id'].tolist()
    np.testing.assert_array_equal([np.float32(r['price']) for r in records], feed['price'].astype(np.float32))


def test_popularity_shift_changes_which_items_are_shown_after_its_day(dataset):
    def correlation(splits, day):
        rows = {c: np.concatenate([splits[s][c] for s in data.SPLITS]) for c in ('item_id', 'request_time')}
        after = rows['request_time'] >= TINY.start_time + day * 86_400
        before_counts, after_counts = (np.bincount(rows['item_id'][mask], minlength=TINY.num_items)
                                       for mask in (~after, after))
        return np.corrcoef(before_counts / (~after).sum(), after_counts / after.sum())[0, 1]
    shifted = data.generate(dataclasses.replace(TINY, popularity_shift=1.0, popularity_shift_day=15.0)).splits
    steady = correlation(dataset.splits, 15.0)
    assert steady > 0.6 and correlation(shifted, 15.0) < steady - 0.3, (steady, correlation(shifted, 15.0))
    unshifted = data.generate(dataclasses.replace(TINY, popularity_shift=1.0, popularity_shift_day=1000.0)).splits
    _assert_same_splits(unshifted, dataset.splits)   # its own random stream: nothing else moves

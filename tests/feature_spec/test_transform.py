"""Each transform of the spec, run by tf.Transform on hand-made rows: OOV, bucket edges, time-gap buckets,
sequence truncation keeping the newest steps, DSIN's sessions, shared vocabularies, CSV lists."""

import os
import shutil
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata

from feature_spec import resolve
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from feature_spec.transform import _frequency_file_lookup, build_preprocessing_fn, time_gap_bucket
from serving.examples import to_example

SPEC = {
    'name': 'unit',
    'behavior': {'max_length': 3, 'length_feature': 'seq_len',
                 'sessions': {'time': 'hist_time', 'gap_seconds': 5, 'max_sessions': 2, 'max_length': 2}},
    'auxiliary': {'seen': {'max_length': 2, 'length_feature': 'seen_len'}},
    'vocabularies': {'item': {'min_frequency': 2, 'num_oov_buckets': 2, 'embedding_dim': 4}},
    'columns': {
        'item': {'kind': 'categorical', 'group': 'item', 'transform': {'type': 'vocabulary', 'vocabulary': 'item'}},
        'hist_item': {'kind': 'id_sequence', 'group': 'behavior',
                      'transform': {'type': 'vocabulary', 'vocabulary': 'item'}},
        'hist_time': {'kind': 'timestamp', 'sequence': True, 'group': 'behavior',
                      'transform': {'type': 'time_gap', 'reference': 'now', 'num_buckets': 6}},
        'seen_item': {'kind': 'id_sequence', 'group': 'seen', 'transform': {'type': 'vocabulary', 'vocabulary': 'item'}},
        'now': {'kind': 'timestamp'},
        'city': {'kind': 'categorical', 'group': 'user', 'transform': {'type': 'hash', 'buckets': 7}},
        'age': {'kind': 'numeric', 'group': 'user', 'transform': {'type': 'bucketize', 'boundaries': [18, 30]}},
        'spend': {'kind': 'numeric', 'group': 'user', 'transform': 'log'},
        'score': {'kind': 'numeric', 'group': 'user', 'transform': 'zscore'},
        'score_q': {'source': 'score', 'kind': 'numeric', 'group': 'user',
                    'transform': {'type': 'bucketize', 'num_buckets': 2}},
        'click': {'kind': 'label'},
        'truth': {'kind': 'ground_truth'},
        'slot': {'kind': 'position', 'transform': 'vocabulary'},
        'dwell': {'kind': 'privileged', 'transform': 'log'},
    },
}
# Counted over the kept (3 newest) history steps and the targets: item 5 ×4, 9 ×2, 6 ×1 (below min_frequency
# 2 → OOV); 7 appears only in rows transformed later. The auxiliary seen_item is looked up, not counted: counted,
# its 6s would put 6 in the vocabulary.
ROWS = [
    {'item': 5, 'hist_item': [6, 5, 5, 9], 'hist_time': [100, 190, 197, 199], 'now': 200, 'city': 11, 'age': 17.0,
     'spend': 0.0, 'score': 1.0, 'click': 1, 'truth': 0.3, 'seen_item': [6, 6, 5, 9], 'slot': 2, 'dwell': 3.0},
    {'item': 6, 'hist_item': [], 'hist_time': [], 'now': 300, 'city': 11, 'age': 18.0, 'spend': np.e - 1,
     'score': 3.0, 'click': 0, 'truth': 0.1, 'seen_item': [6, 6], 'slot': 1, 'dwell': 1.0},
    {'item': 9, 'hist_item': [5], 'hist_time': [300], 'now': 300, 'city': 12, 'age': 30.0, 'spend': 9.0,
     'score': 5.0, 'click': 0, 'truth': 0.2, 'seen_item': [], 'slot': 2, 'dwell': 0.0},
]
UNSEEN = [{**ROWS[0], 'item': 7, 'hist_item': [7, 6]}, ]


@pytest.fixture(name='transformed', scope='module')
def fixture_transformed():
    spec = spec_lib.parse(SPEC)
    metadata = dataset_metadata.DatasetMetadata(schema_lib.schema(spec))
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False):
        (rows, _), transform_fn = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(
            build_preprocessing_fn(spec))
        unseen, _ = ((UNSEEN, metadata), transform_fn) | tft_beam.TransformDataset()
        output_dir = tmp + '/out'
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
        tft_output = tft.TFTransformOutput(output_dir)
        inputs = resolve.model_inputs_from(spec, tft_output)
        frequencies = resolve.table_frequencies(spec, tft_output)
        yield rows, unseen, inputs, frequencies, output_dir


def test_training_only_inputs_and_the_position_ctr(transformed):
    rows, _, inputs, _ = transformed[:4]
    spec = spec_lib.parse(SPEC)
    assert not {'slot', 'dwell'} & set(spec.serving_columns) and 'slot' not in [f.name for f in inputs.fields]
    slot, dwell = inputs.training_only
    assert (slot.group, dwell.group, dwell.kind) == ('position', 'privileged', 'numeric')
    # Slot '2' (2 rows, 1 click) is id 1, slot '1' (1 row, no click) id 2; the first position is the smallest value.
    assert [r['slot'] for r in rows] == [1, 2, 1]
    assert slot.label_rates == (0.0, 0.5, 0.0, 0.0) and slot.first_id == 2
    assert all(np.isfinite(r['dwell']) for r in rows)


def test_shared_vocabulary_counts_target_and_history(transformed):
    rows, unseen, inputs, frequencies = transformed[:4]
    # Vocabulary over item ∪ hist_item: 5 (×4) then 9 (×2); ids shifted by one (0 = padding).
    assert rows[0]['item'] == 1 and rows[2]['item'] == 2
    assert rows[0]['hist_item'].tolist() == [1, 1, 2]
    oov_ids = {rows[1]['item'], unseen[0]['item'], unseen[0]['hist_item'][0]}
    assert all(3 <= i <= 4 for i in oov_ids), oov_ids  # 2 OOV buckets after 2 vocabulary ids
    assert inputs['item'].vocab_size == inputs['hist_item'].vocab_size == 2 + 2 + 1
    assert inputs['hist_item'].query == 'item' and inputs['hist_time'].query is None
    np.testing.assert_array_equal(frequencies['item'], [0, 4, 2, 1, 1])


def test_auxiliary_sequences_keep_their_groups_length_and_are_looked_up_not_counted(transformed):
    rows, _, inputs, frequencies = transformed[:4]
    assert rows[0]['seen_item'].tolist() == [1, 2] and rows[0]['seen_len'] == 2   # [5, 9], the 2 newest
    assert all(3 <= i <= 4 for i in rows[1]['seen_item']) and rows[1]['seen_len'] == 2   # 6 stays OOV
    assert rows[2]['seen_item'].tolist() == [0, 0] and rows[2]['seen_len'] == 0
    np.testing.assert_array_equal(frequencies['item'], [0, 4, 2, 1, 1])
    assert 'seen_item' not in [f.name for f in inputs.fields]
    seen = inputs.auxiliary_group('seen')
    assert seen.length_feature == 'seen_len' and [f.name for f in seen.fields] == ['seen_item']
    assert seen.fields[0].max_length == 2 and seen.fields[0].table == 'item' and seen.fields[0].query == 'item'
    assert type(inputs).from_dict(inputs.to_dict()) == inputs


def test_sequences_keep_the_newest_steps_padded_with_zero(transformed):
    rows = transformed[0]
    # [6, 5, 5, 9] truncated to the 3 newest: [5, 5, 9]; its length is 3.
    assert rows[0]['seq_len'] == 3 and rows[1]['seq_len'] == 0 and rows[2]['seq_len'] == 1
    assert rows[1]['hist_item'].tolist() == [0, 0, 0]
    assert rows[2]['hist_item'].tolist() == [1, 0, 0]


def test_a_loaded_transform_graph_fills_its_vocabulary_tables_once_at_load(transformed, tmp_path):
    # A table built inside the traced function is filled from its file again on every call (TFT leaves a lookup_fn's
    # table there): a served model would pay for it on every request and fail once its asset files went away.
    rows, output_dir = transformed[0], transformed[4]
    spec = spec_lib.parse(SPEC)
    copy = str(tmp_path / 'transform')
    shutil.copytree(output_dir, copy)
    layer = tft.TFTransformOutput(copy).transform_features_layer()
    serialized = [to_example({k: v for k, v in row.items() if k in spec.serving_columns}, spec).SerializeToString()
                  for row in ROWS]
    raw = tf.io.parse_example(tf.constant(serialized), schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD))
    first = layer(raw)
    shutil.rmtree(os.path.join(copy, 'transform_fn', 'assets'))
    again = layer(raw)
    for name in ('item', 'hist_item', 'seen_item'):
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    assert again['item'].numpy().tolist() == [r['item'] for r in rows]


@pytest.mark.parametrize('dtype', [tf.int64, tf.string])
def test_vocabulary_ids_and_oov_buckets_equal_tfs_static_vocabulary_table(dtype, tmp_path):
    path = str(tmp_path / 'vocabulary')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('9 17\n4 3\n2 250\n')      # <count> <token>, most frequent first
    keys = tf.constant([3, 99, 17, 250, 3, 12345, -7, 17], tf.int64)
    keys = tf.strings.as_string(keys) if dtype == tf.string else keys
    ids, size = _frequency_file_lookup(keys, path, num_oov_buckets=5)
    expected = tf.lookup.StaticVocabularyTable(tf.lookup.TextFileInitializer(
        path, dtype, 1, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER, delimiter=' '), num_oov_buckets=5,
        lookup_key_dtype=dtype)
    np.testing.assert_array_equal(ids, expected.lookup(keys))
    assert ids.numpy()[[0, 2, 3]].tolist() == [1, 0, 2] and int(size) == 3 + 5
    assert all(3 <= i < 8 for i in ids.numpy()[[1, 5, 6]])


def test_time_gap_buckets(transformed):
    rows = transformed[0]
    # gaps of the kept steps: 200−190=10 → [8,16) → bucket 4 (+1) = 5; 3 → [2,4) → 3; 1 → [1,2) → 2
    assert rows[0]['hist_time'].tolist() == [5, 3, 2]
    assert rows[2]['hist_time'].tolist() == [1, 0, 0]  # gap 0 → [0,1) → 1; padding 0
    gaps = tf.constant([0, 1, 2, 3, 4, 7, 8, 15, 16, 10**9, -5], tf.int64)
    np.testing.assert_array_equal(time_gap_bucket(gaps, 6).numpy(), [1, 2, 3, 3, 4, 4, 5, 5, 6, 6, 1])


def test_sessions_divide_the_kept_steps_at_gaps_over_the_threshold(transformed):
    rows, _, inputs, _ = transformed[:4]
    # Row 0 keeps times [190, 197, 199]: 197 − 190 = 7 > 5 starts a session, 199 − 197 = 2 does not → sessions
    # [5] and [5, 9] (ids 1; 1, 2), oldest first, 2 steps a session.
    assert rows[0]['hist_item_sessions'].tolist() == [1, 0, 1, 2]
    assert rows[0]['hist_time_sessions'].tolist() == [5, 0, 3, 2]  # the time-gap buckets, laid out alike
    assert rows[0]['session_lengths'].tolist() == [1, 2]
    assert rows[1]['hist_item_sessions'].tolist() == [0, 0, 0, 0] and rows[1]['session_lengths'].tolist() == [0, 0]
    assert rows[2]['hist_item_sessions'].tolist() == [1, 0, 0, 0] and rows[2]['session_lengths'].tolist() == [1, 0]
    sessions = inputs.sessions
    assert sessions.max_sessions == 2 and sessions.length_feature == 'session_lengths'
    assert {f.name: (f.table, f.query, f.max_length) for f in sessions.fields} == {
        'hist_item_sessions': ('item', 'item', 2), 'hist_time_sessions': ('hist_time', None, 2)}
    assert type(inputs).from_dict(inputs.to_dict()) == inputs


def test_bucketize_edges_hash_and_numeric(transformed):
    rows = transformed[0]
    # boundaries [18, 30]: 17 → bucket 0, 18 → 1 (edges are left-closed), 30 → 2; shifted by one.
    assert [r['age'] for r in rows] == [1, 2, 3]
    assert rows[0]['city'] == rows[1]['city'] != 0 and 1 <= rows[2]['city'] <= 7
    spend = np.log1p([0.0, np.e - 1, 9.0])
    np.testing.assert_allclose([r['spend'] for r in rows], (spend - spend.mean()) / spend.std(), rtol=1e-5)
    np.testing.assert_allclose([r['score'] for r in rows], [-1.2247449, 0, 1.2247449], rtol=1e-5)
    assert rows[0]['score_q'] < rows[2]['score_q']
    assert rows[0]['click'] == 1.0 and 'truth' not in rows[0] and 'now' not in rows[0]


def test_csv_lists_are_split_like_tfrecord_lists():
    spec = spec_lib.parse(SPEC)
    csv_rows = [{**row, **{name: [' '.join(map(str, row[name]))] if row[name] else []
                           for name in ('hist_item', 'hist_time', 'seen_item')}} for row in ROWS]
    metadata = dataset_metadata.DatasetMetadata(schema_lib.schema(spec, schema_lib.CSV))
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False):
        (rows, _), _ = (csv_rows, metadata) | tft_beam.AnalyzeAndTransformDataset(build_preprocessing_fn(spec))
    assert rows[0]['hist_time'].tolist() == [5, 3, 2]
    assert rows[0]['seq_len'] == 3 and rows[1]['seq_len'] == 0
    assert rows[0]['hist_item'][:2].tolist() == [1, 1]
    assert rows[0]['seen_item'].tolist() == [1, 2] and rows[0]['seen_len'] == 2


def test_z_scores_and_quantile_buckets_repeat_bitwise_whatever_the_beam_batch_size():
    # Transform reduces each Beam batch, then merges the partial results; how the runner cuts the data (which
    # follows timings) changes the merge. The z-scores and the quantile buckets must not change: float32 statistics
    # changed 72% of these z-scores, TFT's default quantile sketch (epsilon 0.01) moved the bucket edges.
    spec = spec_lib.parse({'name': 'z', 'columns': {
        'price': {'kind': 'numeric', 'group': 'item', 'transform': 'zscore'},
        'spend': {'kind': 'numeric', 'group': 'user', 'transform': 'log'},
        'price_bucket': {'source': 'price', 'kind': 'numeric', 'group': 'item',
                         'transform': {'type': 'bucketize', 'num_buckets': 16}},
        'click': {'kind': 'label'}}})
    metadata = dataset_metadata.DatasetMetadata(schema_lib.schema(spec))
    rng = np.random.default_rng(7)
    rows = [{'price': float(p), 'spend': float(s), 'click': 0}
            for p, s in zip(rng.lognormal(3.0, 1.5, 20000), rng.lognormal(5.0, 2.0, 20000))]
    outputs = []
    for batch_size in (7, 1000):
        with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(
                temp_dir=tmp, desired_batch_size=batch_size, force_tf_compat_v1=False):
            (out, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(build_preprocessing_fn(spec))
        # Instance dicts carry Python floats; the float32 values survive float64 and back exactly.
        outputs.append({name: np.array([r[name] for r in out], np.float32) for name in ('price', 'spend')})
        outputs[-1]['price_bucket'] = np.array([r['price_bucket'] for r in out])
    for name in ('price', 'spend'):
        np.testing.assert_array_equal(outputs[0][name].view(np.int32), outputs[1][name].view(np.int32), err_msg=name)
        assert abs(outputs[0][name].mean()) < 1e-3 and abs(outputs[0][name].std() - 1.0) < 1e-3
    np.testing.assert_array_equal(outputs[0]['price_bucket'], outputs[1]['price_bucket'])
    # 16 equal buckets of 1,250 values (ids shifted by one); TFT's default sketch made them unequal.
    assert np.bincount(outputs[0]['price_bucket']).tolist() == [0] + [1250] * 16

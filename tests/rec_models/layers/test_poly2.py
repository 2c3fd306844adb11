import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.poly2 import HashedPairwiseCross  # noqa: E402

B, N, BUCKETS = 6, 5, 97


def _hash(i, id_i, j, id_j, buckets=BUCKETS):
    """The documented hash, one pair at a time: FarmHash64 of "{i}:{id_i}|{j}:{id_j}" modulo the table size."""
    return int(tf.strings.to_hash_bucket_fast(f'{i}:{id_i}|{j}:{id_j}', buckets))


def _double_loop(table, ids, values):
    """Σ_{i<j} w_{h(i, id_i, j, id_j)} x_i x_j with x = 0 for a missing id (0)."""
    x = np.where(ids != 0, values, 0.0)
    total = np.zeros(len(ids))
    for example in range(len(ids)):
        for i in range(ids.shape[1]):
            for j in range(i + 1, ids.shape[1]):
                total[example] += table[_hash(i, ids[example, i], j, ids[example, j])] * x[example, i] * x[example, j]
    return total


def _inputs(seed=0, num_fields=N):
    """Random ids in 1 … 999 and values, with one missing id (0) in each of the first two examples."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 1000, size=(B, num_fields), dtype=np.int64)
    ids[0, 1 % num_fields] = ids[1, 3 % num_fields] = 0
    return ids, rng.uniform(0.5, 2.0, size=(B, num_fields)).astype(np.float32)


def _layer(ids, **kwargs):
    layer = HashedPairwiseCross(BUCKETS, **kwargs)
    layer(ids)
    layer.table.assign(np.random.default_rng(9).normal(size=BUCKETS).astype(np.float32))
    return layer


@pytest.mark.parametrize('with_values', [True, False])
def test_equals_the_double_loop_with_the_same_hash(with_values):
    ids, values = _inputs()
    layer = _layer(ids)
    crossed = layer(ids, values) if with_values else layer(ids)
    assert crossed.shape == (B,)
    expected = _double_loop(layer.table.numpy(), ids, values if with_values else np.ones_like(values))
    np.testing.assert_allclose(crossed, expected, rtol=1e-5, atol=1e-5)


def test_buckets_are_the_documented_hash_and_separate_fields():
    ids = np.array([[3, 3, 7]], np.int64)
    layer = HashedPairwiseCross(1 << 20)
    layer(ids)
    expected = [_hash(i, ids[0, i], j, ids[0, j], 1 << 20) for i, j in [(0, 1), (0, 2), (1, 2)]]
    np.testing.assert_array_equal(layer.buckets(ids), [expected])
    assert expected[1] != expected[2], 'the same ids in other fields must be another feature'


def test_missing_ids_take_part_in_no_pair():
    ids, values = _inputs(1)
    layer = _layer(ids)
    only_present = ids.copy()
    only_present[:, 2] = 0
    reference = _double_loop(layer.table.numpy(), only_present, values)
    np.testing.assert_allclose(layer(only_present, values), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(np.zeros_like(ids), values), 0.0)


def test_one_field_has_no_pairs():
    ids, values = _inputs(num_fields=1)
    np.testing.assert_array_equal(HashedPairwiseCross(BUCKETS)(ids, values), np.zeros(B))


def test_l2_covers_the_buckets_of_the_batch_in_training_only():
    ids, values = _inputs(2)
    layer = _layer(ids, l2=0.5)
    layer(ids, values, training=False)
    assert not layer.losses
    layer(ids, values, training=True)
    used = {_hash(i, row[i], j, row[j]) for row in ids for i in range(N) for j in range(i + 1, N) if row[i] and row[j]}
    expected = 0.5 * np.sum(layer.table.numpy()[sorted(used)] ** 2)
    np.testing.assert_allclose(float(tf.add_n(layer.losses)), expected, rtol=1e-5)


def test_gradient_of_the_table_is_the_crossed_values():
    ids, values = _inputs(3)
    layer = _layer(ids, l2=0.1)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(ids, values, training=True)) + tf.add_n(layer.losses)
    gradient = tf.convert_to_tensor(tape.gradient(total, layer.table)).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
    zero_table = _layer(ids)
    zero_table.table.assign(np.zeros(BUCKETS, np.float32))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(zero_table(ids, values))
    expected = np.zeros(BUCKETS)
    x = np.where(ids != 0, values, 0.0)
    for row, x_row in zip(ids, x):
        for i in range(N):
            for j in range(i + 1, N):
                expected[_hash(i, row[i], j, row[j])] += x_row[i] * x_row[j]
    np.testing.assert_allclose(tf.convert_to_tensor(tape.gradient(total, zero_table.table)), expected, rtol=1e-5,
                               atol=1e-6)


def test_config_round_trip():
    layer = HashedPairwiseCross(BUCKETS, l2=0.01, initializer='ones')
    clone = HashedPairwiseCross.from_config(layer.get_config())
    assert (clone.num_buckets, clone.l2) == (BUCKETS, 0.01)
    ids, _ = _inputs()
    crossed = clone(ids)
    assert clone.table.shape == (BUCKETS,)
    np.testing.assert_allclose(crossed, [N * (N - 1) // 2 - (N - 1)] * 2 + [N * (N - 1) // 2] * (B - 2))

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import FeatureCross  # noqa: E402
from rec_models.layers.wide import HashedFeatureCrosses  # noqa: E402

B = 8
CROSSES = (FeatureCross('a_x_b', ('a', 'b'), 37), FeatureCross('a_x_b_x_c', ('a', 'b', 'c'), 53))


def _features(seed=0):
    """Random ids in 1 … 30 per column, with a missing id (0) in column b of example 0 and column c of example 1."""
    rng = np.random.default_rng(seed)
    features = {name: rng.integers(1, 31, size=B, dtype=np.int64) for name in 'abc'}
    features['b'][0] = features['c'][1] = 0
    return features


def _layer(features, **kwargs):
    layer = HashedFeatureCrosses(CROSSES, **kwargs)
    layer(features)
    layer.table.assign(np.random.default_rng(7).normal(size=layer.table.shape).astype(np.float32))
    return layer


def _loop(table, features):
    """Σ_k w_{k, FarmHash64("id_a|id_b|…") mod buckets_k}, a cross counted only when none of its ids is 0."""
    total = np.zeros(B)
    offset = 0
    for cross in CROSSES:
        for example in range(B):
            ids = [int(features[name][example]) for name in cross.columns]
            if all(ids):
                key = '|'.join(str(i) for i in ids)
                total[example] += table[offset + int(tf.strings.to_hash_bucket_fast(key, cross.hash_buckets))]
        offset += cross.hash_buckets
    return total


def test_equals_a_loop_over_crosses_and_examples():
    features = _features()
    layer = _layer(features)
    np.testing.assert_allclose(layer(features), _loop(layer.table.numpy(), features), rtol=1e-6, atol=1e-6)


def test_a_missing_id_switches_its_crosses_off():
    features = _features()
    layer = _layer(features)
    rows, phi = layer.buckets(features)
    assert rows.shape == phi.shape == (B, 2)
    np.testing.assert_array_equal(phi[0], [0, 0])  # b missing: both crosses off
    np.testing.assert_array_equal(phi[1], [1, 0])  # c missing: only the triple is off
    assert np.all(rows[:, 0] < 37) and np.all((rows[:, 1] >= 37) & (rows[:, 1] < 90))


def test_the_same_ids_in_another_order_are_another_combination():
    layer = HashedFeatureCrosses([FeatureCross('a_x_b', ('a', 'b'), 1 << 20)])
    swapped = layer.buckets({'a': np.array([3, 5]), 'b': np.array([5, 3])})[0].numpy()
    assert swapped[0, 0] != swapped[1, 0]


def test_l2_covers_the_weights_of_the_batch_in_training_only():
    features = _features(1)
    layer = _layer(features, l2=0.5)
    layer(features, training=False)
    assert not layer.losses
    layer(features, training=True)
    rows, phi = layer.buckets(features)
    used = np.unique(rows.numpy()[phi.numpy() > 0])
    np.testing.assert_allclose(layer.losses[-1], 0.5 * np.sum(layer.table.numpy()[used] ** 2), rtol=1e-5)


def test_needs_a_cross_and_round_trips_its_config():
    with pytest.raises(ValueError, match='crosses'):
        HashedFeatureCrosses([])
    restored = HashedFeatureCrosses.from_config(HashedFeatureCrosses(CROSSES, l2=0.1).get_config())
    assert restored.crosses == CROSSES and restored.l2 == 0.1

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.frequency_estimation import (PRIME, StreamingFrequencyEstimator,  # noqa: E402
                                                     estimation_error, popularity, sample_batches, simulate)

# A hand-made stream: repeats across steps, a duplicate within a step, an empty step, a 2-d batch.
STREAM = [[3, 7, 11], [7], [11, 3, 3], [], [[7, 20], [5, 3]], [20], [3, 11, 7, 5]]
QUERY = np.array([3, 5, 7, 11, 20, 42], np.int64)       # 42 is never seen


def _reference(stream, rows_of, num_hashes, num_buckets, alpha, initial):
    """The equations in NumPy, one step per batch, each distinct (hash, bucket) of the batch once."""
    last = np.zeros((num_hashes, num_buckets), np.int64)
    interval = np.full((num_hashes, num_buckets), initial, np.float64)
    for t, batch in enumerate(stream, start=1):
        ids = np.asarray(batch, np.int64).reshape(-1)
        for i in range(num_hashes):
            for b in set(rows_of(ids)[i].tolist()):
                interval[i, b] = (1 - alpha) * interval[i, b] + alpha * (t - last[i, b])
                last[i, b] = t
    return last, interval


def _run(layer, stream):
    for batch in stream:
        layer.update(tf.constant(batch, tf.int64, shape=np.shape(batch)))


def test_one_hash_without_collisions_equals_the_equations():
    for initial in (0.0, 10.0):
        layer = StreamingFrequencyEstimator(64, learning_rate=0.25, initial_interval=initial)
        buckets = layer.buckets(tf.constant(QUERY)).numpy()[0]
        assert len(set(buckets.tolist())) == len(QUERY)                     # the premise: no collision
        _run(layer, STREAM)
        last, interval = _reference(STREAM, lambda ids: layer.buckets(tf.constant(ids)).numpy(), 1, 64, 0.25,
                                    initial)
        assert int(layer.step.numpy()) == len(STREAM)
        np.testing.assert_array_equal(layer.last_seen.numpy(), last)
        np.testing.assert_allclose(layer.interval.numpy(), interval, rtol=1e-6)
        # By hand: item 3 is in steps 1, 3, 5, 7; item 42 never.
        expected_3 = initial
        for t, previous in ((1, 0), (3, 1), (5, 3), (7, 5)):
            expected_3 = 0.75 * expected_3 + 0.25 * (t - previous)
        np.testing.assert_allclose(interval[0, buckets[0]], expected_3, rtol=1e-12)
        np.testing.assert_array_equal(last[0, buckets], [7, 7, 7, 7, 6, 0])
        p_hat = layer(tf.constant(QUERY)).numpy()
        np.testing.assert_allclose(p_hat, 1.0 / np.maximum(interval[0, buckets], 1.0), rtol=1e-6)
        assert np.all(np.isfinite(p_hat)) and np.all(p_hat <= 1.0)
        assert p_hat[-1] == np.float32(1.0 if initial == 0.0 else 0.1)     # the never-seen guard


def test_several_hashes_take_the_largest_interval_and_equal_the_equations():
    layer = StreamingFrequencyEstimator(5, num_hashes=3, learning_rate=0.3, seed=4, initial_interval=2.0)
    rows_of = lambda ids: layer.buckets(tf.constant(ids, tf.int64)).numpy()  # noqa: E731
    assert len(set(rows_of(QUERY)[0].tolist())) < len(QUERY)                 # 6 ids in 5 buckets: collisions
    _run(layer, STREAM)
    last, interval = _reference(STREAM, rows_of, 3, 5, 0.3, 2.0)
    np.testing.assert_array_equal(layer.last_seen.numpy(), last)
    np.testing.assert_allclose(layer.interval.numpy(), interval, rtol=1e-6)
    rows = rows_of(QUERY)
    expected = 1.0 / np.maximum(np.max(interval[np.arange(3)[:, None], rows], axis=0), 1.0)
    np.testing.assert_allclose(layer(tf.constant(QUERY)).numpy(), expected, rtol=1e-6)
    grid = tf.constant(QUERY.reshape(2, 3))
    assert layer(grid).shape == (2, 3) and layer(grid).dtype == tf.float32


def test_duplicates_and_collisions_within_a_batch_update_a_bucket_once():
    once, many = (StreamingFrequencyEstimator(32, learning_rate=0.5, initial_interval=8.0) for _ in range(2))
    once.update(tf.constant([4], tf.int64))
    many.update(tf.constant([4, 4, 4], tf.int64))
    np.testing.assert_array_equal(once.interval.numpy(), many.interval.numpy())
    single = StreamingFrequencyEstimator(1, learning_rate=0.5, initial_interval=8.0)   # every id collides
    single.update(tf.constant([1, 2, 3], tf.int64))
    np.testing.assert_allclose(single.interval.numpy(), [[0.5 * 8.0 + 0.5 * 1.0]])
    assert int(single.last_seen.numpy()[0, 0]) == 1


def test_hashes_are_the_universal_formula_without_int64_overflow():
    layer = StreamingFrequencyEstimator(1000, num_hashes=4, seed=7)
    ids = np.array([0, 1, 999, PRIME - 1, PRIME, PRIME + 5, 2 ** 40 + 3, 2 ** 62 + 11, 2 ** 63 - 1], np.int64)
    got = layer.buckets(tf.constant(ids)).numpy()
    for i, (a, b) in enumerate(layer.hash_coefficients.numpy().tolist()):
        assert 1 <= a < PRIME and 0 <= b < PRIME
        np.testing.assert_array_equal(got[i], [((a * (int(x) % PRIME) + b) % PRIME) % 1000 for x in ids])
    other = StreamingFrequencyEstimator(1000, num_hashes=4, seed=8).hash_coefficients.numpy()
    assert not np.array_equal(other, layer.hash_coefficients.numpy())
    assert len({tuple(r) for r in layer.hash_coefficients.numpy().tolist()}) == 4


def test_graph_mode_equals_eager_and_config_round_trips():
    eager = StreamingFrequencyEstimator(7, num_hashes=2, learning_rate=0.2, seed=3, name='eager')
    graph = StreamingFrequencyEstimator.from_config(eager.get_config())
    assert graph.get_config() == eager.get_config()
    np.testing.assert_array_equal(graph.hash_coefficients.numpy(), eager.hash_coefficients.numpy())

    @tf.function
    def step(ids):
        graph.update(ids)
        return graph(ids)

    for batch in STREAM:
        ids = tf.constant(batch, tf.int64, shape=np.shape(batch))
        eager.update(ids)
        np.testing.assert_allclose(step(ids).numpy(), eager(ids).numpy(), rtol=1e-6)
    for mine, theirs in zip(graph.weights, eager.weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6)
    assert not graph.trainable_weights and len(graph.non_trainable_weights) == 5   # with the sightings


def test_state_survives_a_checkpoint_and_a_saved_model(tmp_path):
    layer = StreamingFrequencyEstimator(16, num_hashes=2, learning_rate=0.1, seed=2, initial_interval=3.0)
    _run(layer, STREAM)
    model = tf.keras.Sequential([layer])                                      # tracked as a model's state too
    model(tf.constant(QUERY))
    assert {v.name for v in model.non_trainable_weights} >= {v.name for v in layer.weights}
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / 'ckpt'))
    restored = StreamingFrequencyEstimator(16, num_hashes=2, learning_rate=0.1, seed=99, initial_interval=3.0)
    holder = tf.keras.Sequential([restored])
    holder(tf.constant(QUERY))
    tf.train.Checkpoint(model=holder).restore(path).assert_existing_objects_matched()
    for mine, theirs in zip(restored.weights, layer.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())            # the hashes too, not seed 99's
    np.testing.assert_array_equal(restored(tf.constant(QUERY)).numpy(), layer(tf.constant(QUERY)).numpy())
    restored.update(tf.constant([3], tf.int64))
    layer.update(tf.constant([3], tf.int64))
    np.testing.assert_array_equal(restored.interval.numpy(), layer.interval.numpy())   # the stream goes on

    tf.saved_model.save(layer, str(tmp_path / 'saved'))
    loaded = tf.saved_model.load(str(tmp_path / 'saved'))
    for name in ('step', 'last_seen', 'interval', 'hash_coefficients'):
        np.testing.assert_array_equal(getattr(loaded, name).numpy(), getattr(layer, name).numpy())


def test_sampler_draws_distinct_items_with_inclusion_probability_batch_times_q():
    q = popularity(50)
    assert q[0] == 0.0 and np.isclose(q.sum(), 1.0) and np.allclose(popularity(50, switched=True), q[::-1])
    batches = sample_batches(np.random.default_rng(0), q, 8, 20000)
    assert batches.shape == (20000, 8)
    assert all(len(set(row)) == 8 for row in batches.tolist())
    frequency = np.bincount(batches.ravel(), minlength=50) / len(batches)
    np.testing.assert_allclose(frequency, 8 * q, atol=0.012)                 # 4σ of a binomial at p = 0.5 is 0.014
    assert frequency[0] == 0.0


def test_error_is_half_the_l1_distance_over_the_batch_size():
    assert estimation_error([0.5, 0.1, 0.0], np.array([0.25, 0.35, 0.4]), 1) == 0.5 * (0.25 + 0.25 + 0.4)


SMALL = dict(num_items=200, batch_size=16, num_steps=4000, eval_every=100, seed=0)   # switch at step 2000


def _error(result, step):
    return result['errors'][list(result['steps']).index(step)]


def test_simulation_error_falls_then_rises_at_the_switch_and_recovers():
    slow = simulate(num_buckets=1000, learning_rate=0.01, **SMALL)
    fast = simulate(num_buckets=1000, learning_rate=0.1, **SMALL)
    assert slow['switch_step'] == 2000
    # Measured 0.449 → 0.244 (α = 0.01) and 0.347 → 0.183 (α = 0.1).
    for run in (slow, fast):
        assert _error(run, 2000) < 0.7 * _error(run, 100)
    # The switch: 0.183 → 0.601 at step 2100, 0.223 at 4000 (α = 0.1).
    assert _error(fast, 2100) > 2.0 * _error(fast, 2000)
    assert _error(fast, 4000) < 0.6 * _error(fast, 2100)
    # A higher α adapts faster: at step 2500, 0.317 (α = 0.1) against 0.559 (α = 0.01).
    assert _error(fast, 2500) < 0.75 * _error(slow, 2500)


def test_more_hashes_lower_the_error_of_collisions():
    one = simulate(num_buckets=100, num_hashes=1, learning_rate=0.1, **SMALL)      # H = M / 2
    four = simulate(num_buckets=100, num_hashes=4, learning_rate=0.1, **SMALL)
    assert _error(four, 2000) < 0.5 * _error(one, 2000)                             # measured 0.266 vs 0.900
    spread = simulate(num_buckets=250, num_hashes=4, learning_rate=0.1, **SMALL)   # as many buckets as H = 1000
    single = simulate(num_buckets=1000, num_hashes=1, learning_rate=0.1, **SMALL)
    assert _error(spread, 2000) < 0.85 * _error(single, 2000)                       # measured 0.108 vs 0.183


def test_bias_correction_estimates_the_gap_from_the_first_sightings():
    """Item 7 seen every 4th step: the paper's EMA from 0 is (1 − (1 − α)^c) of the gap after c sightings; the
    corrected estimate is the gap itself from the first sightings on."""
    plain = StreamingFrequencyEstimator(64, learning_rate=0.01)
    corrected = StreamingFrequencyEstimator(64, learning_rate=0.01, bias_correction=True)
    for step in range(1, 41):
        batch = [7, 9] if step % 4 == 0 else [9]
        plain.update(tf.constant(batch, tf.int64))
        corrected.update(tf.constant(batch, tf.int64))
    # Sightings at 4, 8, …, 40: gaps 4 each (the first one counts 4 − 0): B = 4 · (1 − 0.99^10).
    np.testing.assert_allclose(float(plain(tf.constant([7], tf.int64))[0]), 1.0)   # B < 1: floored, p̂ = 1
    np.testing.assert_allclose(float(corrected(tf.constant([7], tf.int64))[0]), 0.25, rtol=1e-4)
    np.testing.assert_allclose(float(corrected(tf.constant([9], tf.int64))[0]), 1.0, rtol=1e-4)
    with pytest.raises(ValueError, match='initial_interval'):
        StreamingFrequencyEstimator(64, bias_correction=True, initial_interval=100.0)

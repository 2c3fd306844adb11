import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.capsule import (BehaviorToInterestRouting, LabelAwareAttention,  # noqa: E402
                                       adaptive_interest_count, squash)

B, L, D, E, K, R = 6, 9, 5, 4, 3, 3
MASK = np.zeros((B, L), bool)
MASK[0] = True                                   # 9 behaviours → K' = 3
MASK[1, [0, 2, 5, 8]] = True                     # 4, with holes → 2
MASK[2, 0] = True                                # 1 → 1
#        MASK[3] stays empty                     # 0 → 1 (a zero capsule)
MASK[4, :7] = True                               # 7 → 2
MASK[5, 3:5] = True                              # 2 → 1


def _behaviours(seed=0, batch=B, length=L):
    return np.random.default_rng(seed).normal(size=(batch, length, D)).astype(np.float32)


def _logits(seed=1):
    return np.random.default_rng(seed).normal(size=(B, L, K)).astype(np.float32)


def _layer(**kwargs):
    layer = BehaviorToInterestRouting(K, E, iterations=R, **kwargs)
    layer(_behaviours(), MASK, initial_logits=_logits())
    layer.kernel.assign(np.random.default_rng(3).normal(0.0, 0.6, (D, E)).astype(np.float32))
    return layer


def _expected_count(length, k_max):
    return 1 if length == 0 else max(1, min(k_max, int(np.floor(np.log2(length)))))


def _squash_np(z):
    squared = float(z @ z)
    return np.zeros_like(z) if squared == 0 else squared / (1.0 + squared) * z / np.sqrt(squared)


def _routing_loop(behaviours, mask, logits, s, k_max, iterations, adaptive=True):
    """Algorithm 1 one example, iteration, behaviour and interest at a time, in float64."""
    interests, interest_mask = np.zeros((len(behaviours), k_max, s.shape[1])), np.zeros((len(behaviours), k_max), bool)
    for example in range(len(behaviours)):
        used = _expected_count(int(mask[example].sum()), k_max) if adaptive else k_max
        rows = [i for i in range(behaviours.shape[1]) if mask[example, i]]
        mapped = {i: behaviours[example, i].astype(np.float64) @ s for i in rows}
        b = logits[example].astype(np.float64).copy()
        for _ in range(iterations):
            u = np.zeros((k_max, s.shape[1]))
            for j in range(used):
                z = np.zeros(s.shape[1])
                for i in rows:
                    w_ij = np.exp(b[i, j]) / sum(np.exp(b[i, m]) for m in range(used))
                    z += w_ij * mapped[i]
                u[j] = _squash_np(z)
            for i in rows:
                for j in range(used):
                    b[i, j] += u[j] @ mapped[i]
        interests[example] = u
        interest_mask[example, :used] = True
    return interests, interest_mask


@pytest.mark.parametrize('adaptive', [True, False])
def test_routing_equals_the_numpy_loop(adaptive):
    layer = _layer(adaptive=adaptive)
    behaviours, logits = _behaviours(), _logits()
    interests, interest_mask = layer(behaviours, MASK, initial_logits=logits)
    expected, expected_mask = _routing_loop(behaviours, MASK, logits, layer.kernel.numpy().astype(np.float64), K, R,
                                            adaptive)
    np.testing.assert_allclose(interests.numpy(), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(interest_mask.numpy(), expected_mask)
    assert interests.shape == (B, K, E) and interest_mask.dtype == tf.bool


def test_padded_behaviours_and_their_logits_never_change_the_outputs():
    layer = _layer()
    behaviours, logits = _behaviours(), _logits()
    noisy = np.where(MASK[..., None], behaviours, np.float32(np.nan)).astype(np.float32)
    noisy[~MASK] = np.where(np.arange(D) % 2 == 0, 1e4, np.nan).astype(np.float32)
    noisy_logits = np.where(MASK[..., None], logits, np.float32(1e6)).astype(np.float32)
    reference = layer(behaviours, MASK, initial_logits=logits)[0].numpy()
    np.testing.assert_array_equal(layer(noisy, MASK, initial_logits=noisy_logits)[0].numpy(), reference)
    # the inference draw, not injected, ignores them as well
    np.testing.assert_array_equal(layer(noisy, MASK)[0].numpy(), layer(behaviours, MASK)[0].numpy())


def test_interest_count_follows_the_floored_log2_formula():
    lengths = np.array([0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 1000])
    np.testing.assert_array_equal(adaptive_interest_count(lengths, 4).numpy(), [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4])
    every = np.arange(300)
    np.testing.assert_array_equal(adaptive_interest_count(every, 6).numpy(), [_expected_count(n, 6) for n in every])
    assert adaptive_interest_count(np.array([10 ** 12]), 100).numpy()[0] == 39                  # ⌊log₂ 10¹²⌋


def test_unused_capsules_are_zero_and_masked():
    interests, interest_mask = _layer()(_behaviours(), MASK)
    counts = [_expected_count(n, K) for n in MASK.sum(axis=1)]
    assert counts == [3, 2, 1, 1, 2, 1]
    np.testing.assert_array_equal(interest_mask.numpy(), np.arange(K)[None, :] < np.array(counts)[:, None])
    np.testing.assert_array_equal(interests.numpy()[~interest_mask.numpy()], 0.0)
    norms = np.linalg.norm(interests.numpy(), axis=-1)
    assert np.all(norms[np.delete(np.arange(B), 3)][interest_mask.numpy()[np.delete(np.arange(B), 3)]] > 0)
    np.testing.assert_array_equal(interests.numpy()[3], 0.0)                 # no behaviours: one zero capsule
    _, everyone = _layer(adaptive=False)(_behaviours(), MASK)
    assert everyone.numpy().all()


def test_training_draws_afresh_per_call_and_per_example():
    layer = _layer()
    one = _behaviours()[:1, :, :]
    twins = np.concatenate([one, one])
    twin_mask = np.ones((2, L), bool)
    first = layer(twins, twin_mask, training=True)[0].numpy()
    second = layer(twins, twin_mask, training=True)[0].numpy()
    assert not np.allclose(first, second, atol=1e-4)                      # a new draw at each forward pass
    assert not np.allclose(first[0], first[1], atol=1e-4)                 # and one per example

    @tf.function
    def step(x):
        return layer(x, twin_mask, training=True)[0]

    assert not np.allclose(step(twins).numpy(), step(twins).numpy(), atol=1e-4)   # also when traced once
    random_inference = _layer(deterministic_inference=False)
    assert not np.allclose(random_inference(twins, twin_mask)[0].numpy(),
                           random_inference(twins, twin_mask)[0].numpy(), atol=1e-4)


def test_inference_is_deterministic_and_independent_of_the_batch():
    layer = _layer()
    behaviours = _behaviours()
    batch = layer(behaviours, MASK)[0].numpy()
    np.testing.assert_array_equal(layer(behaviours, MASK, training=False)[0].numpy(), batch)
    for example in (0, 1, 4):
        alone = layer(behaviours[example:example + 1], MASK[example:example + 1])[0].numpy()[0]
        np.testing.assert_allclose(alone, batch[example], rtol=1e-5, atol=1e-6)
        longer = np.concatenate([behaviours[example:example + 1], np.zeros((1, 4, D), np.float32)], axis=1)
        longer_mask = np.concatenate([MASK[example:example + 1], np.zeros((1, 4), bool)], axis=1)
        np.testing.assert_allclose(layer(longer, longer_mask)[0].numpy()[0], batch[example], rtol=1e-5, atol=1e-6)
    other_seed = _layer(inference_seed=7)
    assert not np.allclose(other_seed(behaviours, MASK)[0].numpy()[0], batch[0], atol=1e-4)


def test_squash_norm_is_below_one_and_safe_at_zero():
    z = np.random.default_rng(5).normal(0.0, 3.0, (50, 6)).astype(np.float32)
    z[0] = 0.0
    z[1] *= 1e-4
    z[2] *= 1e3
    squashed = squash(z).numpy()
    norms = np.linalg.norm(squashed, axis=-1)
    assert np.all(norms >= 0.0) and np.all(norms < 1.0)
    np.testing.assert_allclose(squashed[1:], np.stack([_squash_np(v.astype(np.float64)) for v in z[1:]]),
                               rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(squashed[0], 0.0)
    np.testing.assert_allclose(squash(z.T, axis=0).numpy(), squashed.T, rtol=1e-6)
    zero = tf.zeros((2, 4))
    with tf.GradientTape() as tape:
        tape.watch(zero)
        out = tf.reduce_sum(squash(zero))
    gradient = tape.gradient(out, zero).numpy()
    assert np.all(np.isfinite(gradient))


def _attention_reference(interests, mask, target, power):
    out = np.zeros((len(interests), interests.shape[-1]))
    for example in range(len(interests)):
        valid = np.flatnonzero(mask[example])
        if len(valid) == 0:
            continue
        scores = power * (interests[example, valid].astype(np.float64) @ target[example])
        weights = np.exp(scores - scores.max())
        out[example] = (weights / weights.sum()) @ interests[example, valid]
    return out


def _attention_inputs(seed=6):
    rng = np.random.default_rng(seed)
    interests = rng.normal(size=(5, K, E)).astype(np.float32)
    target = rng.normal(size=(5, E)).astype(np.float32)
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 0, 1]], bool)
    return interests, mask, target


@pytest.mark.parametrize('power', [0.0, 1.0, 2.0, 1.5])
def test_label_aware_attention_equals_the_numpy_reference(power):
    interests, mask, target = _attention_inputs()
    out = LabelAwareAttention(power)(interests, mask, target).numpy()
    np.testing.assert_allclose(out, _attention_reference(interests, mask, target, power), rtol=1e-5, atol=1e-6)
    if power == 0.0:                                                # p = 0: the mean of the valid interests
        np.testing.assert_allclose(out[1], interests[1, :2].mean(axis=0), rtol=1e-5)


def test_label_aware_attention_ignores_masked_interests():
    interests, mask, target = _attention_inputs()
    noisy = np.where(mask[..., None], interests, np.float32(1e3)).astype(np.float32)
    layer = LabelAwareAttention(2.0)
    np.testing.assert_array_equal(layer(noisy, mask, target).numpy(), layer(interests, mask, target).numpy())
    np.testing.assert_array_equal(layer(interests, mask, target).numpy()[3], 0.0)


def test_label_aware_attention_has_no_nan_with_negative_scores():
    interests, mask, target = _attention_inputs()
    target = np.full((5, E), -1.0, np.float32)
    interests = np.abs(interests)                                   # every score is negative
    variables = tf.Variable(interests)
    for power in (1.5, 2.0, 2.5, 50.0):
        with tf.GradientTape() as tape:
            out = LabelAwareAttention(power)(variables, mask, target)
            total = tf.reduce_sum(out)
        gradient = tape.gradient(total, variables).numpy()
        assert np.all(np.isfinite(out.numpy())) and np.all(np.isfinite(gradient))
    assert np.isnan(tf.pow(-1.0, 1.5).numpy())                     # what the paper's literal pow would give


def test_label_aware_attention_approaches_the_argmax_interest_for_large_power():
    interests, mask, target = _attention_inputs()
    out = LabelAwareAttention(1e4)(interests, mask, target).numpy()
    for example in range(len(interests)):
        valid = np.flatnonzero(mask[example])
        if len(valid):
            best = valid[np.argmax(interests[example, valid] @ target[example])]
            np.testing.assert_allclose(out[example], interests[example, best], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('stop', [False, True])
def test_gradients_reach_the_bilinear_map(stop):
    layer = _layer(stop_routing_gradient=stop)
    behaviours = tf.constant(_behaviours())
    target = tf.constant(np.random.default_rng(8).normal(size=(B, E)).astype(np.float32))
    with tf.GradientTape() as tape:
        interests, interest_mask = layer(behaviours, MASK, training=True)
        loss = tf.reduce_sum(LabelAwareAttention(2.0)(interests, interest_mask, target) * target)
    gradient = tape.gradient(loss, layer.kernel).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 1e-6
    full, stopped = _layer(), _layer(stop_routing_gradient=True)
    np.testing.assert_array_equal(full(behaviours, MASK, initial_logits=_logits())[0].numpy(),
                                  stopped(behaviours, MASK, initial_logits=_logits())[0].numpy())


def test_config_round_trip():
    layer = _layer(adaptive=False, logit_stddev=0.5, inference_seed=3)
    clone = BehaviorToInterestRouting.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert LabelAwareAttention.from_config(LabelAwareAttention(3.0).get_config()).power == 3.0

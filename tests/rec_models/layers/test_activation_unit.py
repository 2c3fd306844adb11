import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.activation_unit import ActivationUnit, AttentionPooling  # noqa: E402

B, L, D, DS = 6, 5, 4, 3


def _inputs(seed=0, side=True):
    rng = np.random.default_rng(seed)
    inputs = {'keys': rng.normal(size=(B, L, D)).astype(np.float32),
              'query': rng.normal(size=(B, D)).astype(np.float32)}
    if side:
        inputs['side'] = rng.normal(size=(B, L, DS)).astype(np.float32)
    lengths = np.array([0, 1, 2, 3, 5, 5])
    return inputs, np.arange(L)[None] < lengths[:, None]


@pytest.mark.parametrize('side', [True, False])
def test_split_first_layer_equals_concat_then_dense(side):
    inputs, mask = _inputs(side=side)
    unit = ActivationUnit((8, 4))
    unit(inputs, mask=mask)
    unit.bias.assign(np.random.default_rng(1).normal(size=8).astype(np.float32))
    keys, query = inputs['keys'], np.broadcast_to(inputs['query'][:, None], inputs['keys'].shape)
    parts = [keys, query, keys - query, keys * query] + ([inputs['side']] if side else [])
    naive = np.concatenate(parts, axis=-1) @ unit.kernel.numpy() + unit.bias.numpy()
    assert unit.kernel.shape == (4 * D + (DS if side else 0), 8)
    np.testing.assert_allclose(unit.first_layer(inputs).numpy(), naive, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('training', [True, False])
def test_padded_steps_never_change_the_outputs(training):
    inputs, mask = _inputs()
    noisy = {name: value.copy() for name, value in inputs.items()}
    rng = np.random.default_rng(2)
    for name in ('keys', 'side'):
        noisy[name][~mask] = rng.normal(10.0, 5.0, size=noisy[name][~mask].shape)
    pooling = AttentionPooling((8, 4))
    pooled, weights = pooling(inputs, mask=mask, training=training)
    noisy_pooled, noisy_weights = pooling(noisy, mask=mask, training=training)
    np.testing.assert_allclose(noisy_pooled, pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(noisy_weights, weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(weights.numpy()[~mask], 0.0)
    np.testing.assert_array_equal(pooled.numpy()[0], 0.0)


def test_pooling_is_the_weighted_sum_without_softmax():
    inputs, mask = _inputs()
    pooled, weights = AttentionPooling((8, 4))(inputs, mask=mask, training=True)
    behaviours = np.concatenate([inputs['keys'], inputs['side']], axis=-1)  # [e_j, s_j]
    np.testing.assert_allclose(pooled, np.einsum('bl,bld->bd', weights.numpy(), behaviours), rtol=1e-5, atol=1e-6)
    sums = weights.numpy()[mask.sum(axis=1) > 1].sum(axis=1)
    assert np.all(np.abs(sums - 1.0) > 1e-3), 'weights look softmax-normalised'


def test_one_sequence_against_many_queries_equals_the_repeated_sequence():
    """Keys of batch 1 against N queries (the ``rank`` signature) = the keys repeated N times."""
    inputs, mask = _inputs()
    pooling = AttentionPooling((8, 4))
    one = {'keys': inputs['keys'][4:5], 'side': inputs['side'][4:5], 'query': inputs['query']}  # 5 valid steps
    rows = len(inputs['query'])
    repeated = {name: np.repeat(value, rows, axis=0) for name, value in one.items() if name != 'query'}
    broadcast, broadcast_weights = pooling(one, mask=mask[4:5], training=False)
    tiled, tiled_weights = pooling({**repeated, 'query': inputs['query']}, mask=np.repeat(mask[4:5], rows, axis=0),
                                   training=False)
    np.testing.assert_allclose(broadcast, tiled, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(broadcast_weights, tiled_weights, rtol=1e-5, atol=1e-6)
    assert broadcast.shape[0] == rows and np.std(broadcast.numpy()[:, 0]) > 1e-4


def test_duplicated_behaviour_doubles_its_contribution():
    """Without softmax, u([a, a, b]) − u([a, b]) = a's contribution u([a]) (inference: no batch coupling)."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, D)).astype(np.float32)
    side_a, side_b = rng.normal(size=(2, DS)).astype(np.float32)
    query = rng.normal(size=(1, D)).astype(np.float32)
    pooling = AttentionPooling((8, 4))

    def pooled(steps, sides):
        keys = np.zeros((1, L, D), np.float32)
        side = np.zeros((1, L, DS), np.float32)
        keys[0, :len(steps)], side[0, :len(sides)] = steps, sides
        mask = np.arange(L)[None] < len(steps)
        return pooling({'keys': keys, 'query': query, 'side': side}, mask=mask, training=False)[0].numpy()

    difference = pooled([a, a, b], [side_a, side_a, side_b]) - pooled([a, b], [side_a, side_b])
    np.testing.assert_allclose(difference, pooled([a], [side_a]), rtol=1e-4, atol=1e-5)
    assert np.abs(difference).max() > 1e-3


def test_gradients_reach_keys_query_and_side():
    inputs, mask = _inputs()
    tensors = {name: tf.constant(value) for name, value in inputs.items()}
    pooling = AttentionPooling((8, 4))
    with tf.GradientTape() as tape:
        tape.watch(list(tensors.values()))
        pooled, _ = pooling(tensors, mask=mask, training=True)
        loss = tf.reduce_sum(pooled ** 2)
    gradients = tape.gradient(loss, list(tensors.values()) + pooling.trainable_variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in gradients)


def test_config_round_trip():
    layer = AttentionPooling((16, 8), activation='prelu')
    clone = AttentionPooling.from_config(layer.get_config())
    assert (clone.hidden_units, clone.activation) == ((16, 8), 'prelu')
    unit = ActivationUnit.from_config(ActivationUnit((6,), activation='relu').get_config())
    inputs, mask = _inputs(side=False)
    assert unit(inputs, mask=mask).shape == (B, L)


@pytest.mark.parametrize('activation', ['dice', 'prelu'])
@pytest.mark.parametrize('side', [True, False])
def test_packed_valid_steps_equal_the_padded_form_and_its_gradients(side, activation):
    """``packed=True`` runs the unit on the valid steps only: the same weights, pooled vector and gradients (Dice's
    statistics over the same valid steps), in training and in inference."""
    inputs, mask = _inputs(side=side)
    tensors = {name: tf.constant(value) for name, value in inputs.items()}
    layer = AttentionPooling((8, 4), activation=activation)
    layer(tensors, mask=mask)
    rng = np.random.default_rng(2)
    for variable in layer.trainable_variables:   # Dice's and PReLU's α start at 0: move them off it
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    for training in (False, True):
        results = []
        for packed in (False, True):
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                pooled, weights = layer(tensors, mask=mask, training=training, packed=packed)
                loss = tf.reduce_sum(tf.sin(pooled)) + tf.reduce_sum(tf.square(weights))
            results.append((pooled, weights, tape.gradient(loss, [tensors, layer.trainable_variables])))
        (pooled, weights, grads), (packed_pooled, packed_weights, packed_grads) = results
        np.testing.assert_allclose(packed_pooled, pooled, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(packed_weights, weights, rtol=1e-5, atol=1e-5)
        assert not np.any(packed_weights.numpy()[~mask])
        for expected, got in zip(tf.nest.flatten(grads), tf.nest.flatten(packed_grads)):
            np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(expected), rtol=1e-4,
                                       atol=1e-5)

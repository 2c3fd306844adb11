"""What the registry-wide suites do not check of DMR: p_t, the two relevances, the separate target table and the
negative-sampling loss, each against a direct computation."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.sequence.behavior import AUX_LOSS  # noqa: E402
from toy_inputs import INPUTS, L, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'negatives': 2, 'match_dim': 6, 'position_dim': 3}


def _model():
    tf.keras.utils.set_random_seed(0)
    model = registry.build('dmr', INPUTS, HPARAMS)
    model(_features())
    rng = np.random.default_rng(5)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))
    return model


def _softmax(scores):
    exponentials = np.exp(scores - scores.max())
    return exponentials / exponentials.sum()


def test_positional_vectors_rank_the_steps_by_recency_and_carry_the_side_information():
    model = _model()
    features = _features()
    _, _, side = model.behaviours(model.embedding(features))
    p = model.positional(side, tf.constant(features['hist_length'])).numpy()
    positions = model.positions.numpy()
    for example, length in enumerate(features['hist_length']):
        for step in range(length):
            np.testing.assert_allclose(p[example, step, :3], positions[length - 1 - step])  # the newest: rank 0
            np.testing.assert_allclose(p[example, step, 3:], side.numpy()[example, step])


def test_relevances_follow_their_equations_and_u_ignores_the_target():
    model = _model()
    features = _features()
    outputs = model(features)
    keys, query, side = (t.numpy() for t in model.behaviours(model.embedding(features)))
    p = model.positional(tf.constant(side), tf.constant(features['hist_length'])).numpy()
    vectors = next(iter(model.match_embedding.tables.values())).numpy()
    u2i = [w.numpy() for w in model.user_to_item.weights]   # kernel_p, kernel_e, bias, z
    i2i = [w.numpy() for w in model.item_to_item.weights]   # kernel_c, kernel_p, kernel_e, bias, z
    for example, length in enumerate(features['hist_length']):
        if length == 0:
            continue
        steps = range(length)
        a = np.array([np.tanh(p[example, t] @ u2i[0] + keys[example, t] @ u2i[1] + u2i[2]) @ u2i[3] for t in steps])
        pooled = _softmax(a) @ keys[example, :length]
        u = model.user_vector(pooled[np.newaxis]).numpy()[0]
        expected_r = u @ vectors[features['item_id'][example]]
        assert outputs['relevance'].numpy()[example] == pytest.approx(expected_r, rel=1e-4, abs=1e-5)
        scores = np.array([np.tanh(query[example] @ i2i[0] + p[example, t] @ i2i[1] + keys[example, t] @ i2i[2]
                                   + i2i[3]) @ i2i[4] for t in steps])
        np.testing.assert_allclose(outputs['attention_weights'].numpy()[example, :length], _softmax(scores),
                                   rtol=1e-4, atol=1e-6)
    other = dict(features, item_id=features['item_id'] % 29 + 1)  # another target: u unchanged, r changes
    lengths = tf.constant(features['hist_length'])
    np.testing.assert_allclose(model.user_vector_of(tf.constant(keys), tf.constant(side), lengths),
                               model.user_vector_of(*(t for t in model.behaviours(model.embedding(other))[::2]),
                                                    lengths), rtol=1e-6)
    assert not np.allclose(model(other)['relevance'], outputs['relevance'])


def test_negative_sampling_loss_equals_its_equation():
    model = _model()
    features = _features()
    outputs = model(features, training=True)
    keys, _, side = model.behaviours(model.embedding(features))
    lengths = features['hist_length']
    previous = np.maximum(lengths - 1, 0)
    users = model.user_vector_of(keys, side, tf.constant(previous)).numpy()
    vectors = next(iter(model.match_embedding.tables.values())).numpy()
    last = features['hist_item_id'][np.arange(len(lengths)), previous]
    total, counted = 0.0, 0
    for i, length in enumerate(lengths):
        if length < 2:
            continue
        counted += 1
        total += np.logaddexp(0.0, -users[i] @ vectors[last[i]])
        for shift in (1, 2):
            j = (i - shift) % len(lengths)
            if lengths[j] >= 2 and last[j] != last[i]:
                total += np.logaddexp(0.0, users[i] @ vectors[last[j]])
    assert counted > 3
    assert float(outputs[AUX_LOSS]) == pytest.approx(total / counted, rel=1e-4)
    assert AUX_LOSS not in model(features) and AUX_LOSS not in registry.build(
        'dmr', INPUTS, {**HPARAMS, 'aux_weight': 0.0})(features, training=True)


def test_the_target_table_is_separate_and_regularised():
    model = _model()
    assert next(iter(model.match_embedding.tables)) == 'item_id_match'
    assert model.match_embedding.tables['item_id_match'].shape == (INPUTS['item_id'].vocab_size, 6)
    assert 'item_id' in model.embedding.tables  # e_t and e_c keep the shared table
    regularised = registry.build('dmr', INPUTS, {**HPARAMS, 'l2': 0.5, 'aux_weight': 0.0})
    regularised(_features(), training=True)
    assert len(regularised.losses) == len(regularised.embedding.tables) + 1
    assert L == model.positions.shape[0]

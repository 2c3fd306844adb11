import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.transfm import TranslationInteraction  # noqa: E402

B, K = 4, 5


def _inputs(num_fields, seed=0):
    rng = np.random.default_rng(seed)
    embeddings, translations = rng.normal(size=(2, B, num_fields, K)).astype(np.float32)
    values = rng.uniform(0.5, 2.0, size=(B, num_fields)).astype(np.float32)
    return embeddings, translations, values


def _double_loop(embeddings, translations, values):
    """Σ_{i<j} ‖v_i + v'_i − v_j‖² x_i x_j, one pair at a time in float64."""
    v, t, x = (np.asarray(a, np.float64) for a in (embeddings, translations, values))
    total = np.zeros(v.shape[0])
    for i in range(v.shape[1]):
        for j in range(i + 1, v.shape[1]):
            total += np.sum((v[:, i] + t[:, i] - v[:, j]) ** 2, axis=-1) * x[:, i] * x[:, j]
    return total


@pytest.mark.parametrize('num_fields', [1, 2, 3, 6, 11])
def test_linear_form_equals_the_double_loop(num_fields):
    embeddings, translations, values = _inputs(num_fields, seed=num_fields)
    layer = TranslationInteraction()
    with_values = layer(embeddings, translations, values)
    assert with_values.shape == (B,)
    np.testing.assert_allclose(with_values, _double_loop(embeddings, translations, values), rtol=1e-5, atol=1e-5)
    ones = np.ones((B, num_fields), np.float32)
    np.testing.assert_allclose(layer(embeddings, translations), _double_loop(embeddings, translations, ones),
                               rtol=1e-5, atol=1e-5)
    if num_fields == 1:
        np.testing.assert_array_equal(with_values, 0.0)


def test_order_of_the_fields_matters_and_is_followed():
    """d²(v_i + v'_i, v_j) is not symmetric: reversing the fields changes Σ_{i<j}, and the layer follows."""
    embeddings, translations, values = _inputs(4, seed=1)
    layer = TranslationInteraction()
    forward = layer(embeddings, translations, values).numpy()
    backward = layer(embeddings[:, ::-1], translations[:, ::-1], values[:, ::-1]).numpy()
    np.testing.assert_allclose(backward, _double_loop(embeddings[:, ::-1], translations[:, ::-1], values[:, ::-1]),
                               rtol=1e-5, atol=1e-5)
    assert np.abs(forward - backward).min() > 1e-3


def test_zero_translation_gives_fm_with_squared_distances():
    embeddings, _, values = _inputs(5, seed=2)
    expected = _double_loop(embeddings, np.zeros_like(embeddings), values)
    np.testing.assert_allclose(TranslationInteraction()(embeddings, np.zeros_like(embeddings), values), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_zero_value_drops_the_field_from_every_pair():
    embeddings, translations, values = _inputs(5, seed=3)
    values[:, 2] = 0.0
    kept = [0, 1, 3, 4]
    layer = TranslationInteraction()
    np.testing.assert_allclose(layer(embeddings, translations, values),
                               layer(embeddings[:, kept], translations[:, kept], values[:, kept]), rtol=1e-5, atol=1e-5)


def test_gradients_reach_both_vectors_and_match_the_loop():
    embeddings, translations, values = (tf.constant(a) for a in _inputs(4, seed=4))

    def gradients(function):
        with tf.GradientTape() as tape:
            tape.watch([embeddings, translations])
            total = tf.reduce_sum(function(embeddings, translations, values))
        return tape.gradient(total, [embeddings, translations])

    def loop(v, t, x):
        return sum(tf.reduce_sum(tf.square(v[:, i] + t[:, i] - v[:, j]), axis=-1) * x[:, i] * x[:, j]
                   for i in range(4) for j in range(i + 1, 4))

    for got, expected in zip(gradients(TranslationInteraction()), gradients(loop)):
        assert got is not None and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_config_round_trip():
    layer = TranslationInteraction(name='trans')
    assert TranslationInteraction.from_config(layer.get_config()).name == 'trans'

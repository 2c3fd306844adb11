import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import itertools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402
from rec_models.layers.field_aware import FieldAwareEmbedding, FieldAwareInteraction  # noqa: E402

EMBEDDINGS = np.random.default_rng(0).normal(size=(3, 5, 5, 4)).astype(np.float32)

INPUTS = ModelInputs(fields=(
    InputField('item_id', 'categorical', 'item', table='item_id', vocab_size=10, embedding_dim=2),
    InputField('price', 'numeric', 'item'),
    InputField('category', 'categorical', 'item', table='category', vocab_size=5, embedding_dim=2),
    InputField('hist_item_id', 'sequence', 'behavior', table='item_id', vocab_size=10, embedding_dim=2,
               max_length=3, query='item_id'),
    InputField('last_item_id', 'categorical', 'behavior', table='item_id', vocab_size=10, embedding_dim=2),
    InputField('age', 'numeric', 'user'),
), sequence_length='hist_length')

FEATURES = {
    'item_id': np.array([3, 5], np.int64),
    'price': np.array([1.5, -2.0], np.float32),
    'category': np.array([1, 4], np.int64),
    'hist_item_id': np.array([[3, 7, 0], [1, 0, 0]], np.int64),
    'last_item_id': np.array([7, 5], np.int64),
    'hist_length': np.array([2, 1], np.int64),
    'age': np.array([0.5, 3.0], np.float32),
}


def _pairwise(embeddings, product):
    n = embeddings.shape[1]
    return np.stack([product(embeddings[:, i, j], embeddings[:, j, i])
                     for i, j in itertools.combinations(range(n), 2)], axis=1)


def test_inner_mode_equals_loop_and_sums_to_ffm_term():
    out = FieldAwareInteraction('inner')(EMBEDDINGS).numpy()
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, _pairwise(EMBEDDINGS, lambda a, b: np.sum(a * b, axis=-1)), rtol=1e-5, atol=1e-6)
    ffm = np.zeros(3)
    for b, i, j, f in itertools.product(range(3), range(5), range(5), range(4)):
        if i < j:
            ffm[b] += EMBEDDINGS[b, i, j, f] * EMBEDDINGS[b, j, i, f]
    np.testing.assert_allclose(out.sum(axis=1), ffm, rtol=1e-5, atol=1e-5)


def test_hadamard_mode_equals_loop():
    out = FieldAwareInteraction('hadamard')(EMBEDDINGS).numpy()
    assert out.shape == (3, 10, 4)
    np.testing.assert_allclose(out, _pairwise(EMBEDDINGS, np.multiply), rtol=1e-5, atol=1e-6)


def test_interaction_config_and_validation():
    layer = FieldAwareInteraction.from_config(FieldAwareInteraction('hadamard').get_config())
    assert layer.mode == 'hadamard'
    with pytest.raises(ValueError, match='unknown mode'):
        FieldAwareInteraction('outer')
    with pytest.raises(ValueError, match=r'\[B, n, n, k\]'):
        FieldAwareInteraction()(EMBEDDINGS[:, :, :4])


def test_interaction_gradient_reaches_only_cross_field_vectors():
    embeddings = tf.constant(EMBEDDINGS)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = tf.reduce_sum(FieldAwareInteraction('inner')(embeddings))
    gradient = tape.gradient(loss, embeddings).numpy()
    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(gradient, np.swapaxes(EMBEDDINGS, 1, 2) * (1 - np.eye(5))[None, :, :, None],
                               rtol=1e-6)


def test_embedding_matrices():
    layer = FieldAwareEmbedding(INPUTS)
    out = layer(FEATURES).numpy()
    assert layer.field_names == ('item_id', 'price', 'category', 'last_item_id', 'age')
    assert out.shape == (2, 5, 5, 2)
    item, category = layer.tables['item_id'].numpy(), layer.tables['category'].numpy()
    numeric = layer.numeric_matrices.numpy()
    assert item.shape == (10, 10) and category.shape == (5, 10) and numeric.shape == (2, 5, 2)
    for b in range(2):
        np.testing.assert_allclose(out[b, 0], item[FEATURES['item_id'][b]].reshape(5, 2))
        np.testing.assert_allclose(out[b, 1], FEATURES['price'][b] * numeric[0], rtol=1e-6)
        np.testing.assert_allclose(out[b, 2], category[FEATURES['category'][b]].reshape(5, 2))
        np.testing.assert_allclose(out[b, 3], item[FEATURES['last_item_id'][b]].reshape(5, 2))
        np.testing.assert_allclose(out[b, 4], FEATURES['age'][b] * numeric[1], rtol=1e-6)


def test_embedding_with_behavior_pools_the_history_into_a_field():
    layer = FieldAwareEmbedding(INPUTS, use_behavior=True)
    out = layer(FEATURES).numpy()
    assert layer.field_names == ('item_id', 'price', 'category', 'hist_item_id', 'last_item_id', 'age')
    assert out.shape == (2, 6, 6, 2)
    item = layer.tables['item_id'].numpy()
    for b in range(2):
        valid = FEATURES['hist_item_id'][b, :FEATURES['hist_length'][b]]  # padded steps are left out
        np.testing.assert_allclose(out[b, 3], item[valid].mean(axis=0).reshape(6, 2), rtol=1e-6)
        np.testing.assert_allclose(out[b, 4], item[FEATURES['last_item_id'][b]].reshape(6, 2))
    copy = FieldAwareEmbedding.from_config(layer.get_config())
    assert copy.field_names == layer.field_names


def test_embedding_l2_config_and_gradients():
    layer = FieldAwareEmbedding(INPUTS, l2=0.1, frequencies={'category': np.arange(5)})
    with tf.GradientTape() as tape:
        out = layer(FEATURES, training=True)
        loss = tf.reduce_sum(FieldAwareInteraction()(out)) + tf.add_n(layer.losses)
    item, category = layer.tables['item_id'].numpy(), layer.tables['category'].numpy()
    ids = np.array([3, 5, 7])  # item id 5 occurs twice (in item_id and in last_item_id), 3 and 7 once
    expected = 0.1 * (np.sum(item[ids] ** 2 / np.array([[1], [2], [1]])) + np.sum(category[[1, 4]] ** 2 / [[1], [4]]))
    assert float(tf.add_n(layer.losses)) == pytest.approx(expected, rel=1e-5)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert len(gradients) == 3
    assert all(g is not None and np.all(np.isfinite(tf.convert_to_tensor(g).numpy())) for g in gradients)
    copy = FieldAwareEmbedding.from_config(layer.get_config())
    copy(FEATURES)
    copy.set_weights(layer.get_weights())
    np.testing.assert_allclose(copy(FEATURES), layer(FEATURES))


def test_embedding_needs_one_width():
    with pytest.raises(ValueError, match='one embedding_dim'):
        FieldAwareEmbedding(ModelInputs(fields=(
            InputField('a', 'categorical', 'item', table='a', vocab_size=3, embedding_dim=2),
            InputField('b', 'categorical', 'item', table='b', vocab_size=3, embedding_dim=3))))

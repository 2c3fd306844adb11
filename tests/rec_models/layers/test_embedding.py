import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402
from rec_models.layers.embedding import FieldEmbedding, LinearEmbedding, NumericEmbedding  # noqa: E402

INPUTS = ModelInputs(fields=(
    InputField('item_id', 'categorical', 'item', table='item_id', vocab_size=10, embedding_dim=3),
    InputField('category', 'categorical', 'item', table='category', vocab_size=5, embedding_dim=2),
    InputField('price', 'numeric', 'item'),
    InputField('hist_item_id', 'sequence', 'behavior', table='item_id', vocab_size=10, embedding_dim=3,
               max_length=4, query='item_id'),
), sequence_length='hist_length')

FEATURES = {
    'item_id': np.array([3, 5, 0], np.int64),
    'category': np.array([1, 1, 2], np.int64),
    'price': np.array([1.0, 2.0, 3.0], np.float32),
    'hist_item_id': np.array([[3, 7, 0, 0], [7, 7, 7, 0], [0, 0, 0, 0]], np.int64),
    'hist_length': np.array([2, 3, 0], np.int64),
    'click': np.array([1, 0, 1], np.int64),
}


def _built(**kwargs):
    layer = FieldEmbedding(INPUTS, **kwargs)
    layer(FEATURES)
    return layer


def test_lookups_and_shared_table():
    layer = _built()
    out = layer(FEATURES)
    assert sorted(out) == ['category', 'hist_item_id', 'item_id']
    assert out['item_id'].shape == (3, 3) and out['hist_item_id'].shape == (3, 4, 3)
    assert len([w for w in layer.trainable_weights if 'item_id' in w.name]) == 1
    np.testing.assert_array_equal(out['item_id'][0], out['hist_item_id'][0, 0])
    with tf.GradientTape() as tape:
        out = layer(FEATURES)
        loss = tf.reduce_sum(out['item_id']) + tf.reduce_sum(out['hist_item_id'])
    gradient = tf.convert_to_tensor(tape.gradient(loss, layer.tables['item_id'])).numpy()
    assert gradient[3].sum() == pytest.approx(2 * 3) and gradient[7].sum() == pytest.approx(4 * 3)


def _expected_penalty(layer, l2, counts_of):
    """λ Σ over the unique non-zero ids of each table of ‖w_j‖² / n_j."""
    ids = {'item_id': {3, 5, 7}, 'category': {1, 2}}
    total = 0.0
    for table, present in ids.items():
        rows = layer.tables[table].numpy()
        total += sum(np.sum(rows[j] ** 2) / counts_of(table, j) for j in present)
    return l2 * total


def test_mini_batch_aware_l2_with_frequencies():
    frequencies = {'item_id': np.arange(10) + 1.0, 'category': np.array([0, 4, 9, 1, 1])}
    layer = _built(l2=0.1, frequencies=frequencies)
    assert len(layer.non_trainable_weights) == 2
    np.testing.assert_array_equal(layer.frequencies['item_id'].numpy(), frequencies['item_id'])
    layer(FEATURES, training=True)
    penalty = float(tf.add_n(layer.losses))
    assert penalty == pytest.approx(_expected_penalty(layer, 0.1, lambda table, j: frequencies[table][j]), rel=1e-5)
    # Rows absent from the batch, and row 0 (padding / missing), carry no penalty.
    for table, absent in (('item_id', [0, 1, 2, 4, 6, 8, 9]), ('category', [0, 3, 4])):
        rows = layer.tables[table].numpy()
        rows[absent] = 100.0
        layer.tables[table].assign(rows)
    layer(FEATURES, training=True)
    assert float(tf.add_n(layer.losses)) == pytest.approx(penalty, rel=1e-6)


def test_mini_batch_aware_l2_falls_back_to_batch_counts():
    layer = _built(l2=0.5)
    layer(FEATURES, training=True)
    batch_counts = {'item_id': {3: 2, 5: 1, 7: 4}, 'category': {1: 2, 2: 1}}
    expected = _expected_penalty(layer, 0.5, lambda table, j: batch_counts[table][j])
    assert float(tf.add_n(layer.losses)) == pytest.approx(expected, rel=1e-5)


def test_no_penalty_in_inference_or_without_l2():
    layer = _built(l2=0.5)
    layer(FEATURES, training=False)
    assert layer.losses == []
    no_l2 = _built()
    no_l2(FEATURES, training=True)
    assert no_l2.losses == []


def test_frequencies_of_the_wrong_shape_are_rejected_and_of_other_tables_ignored():
    with pytest.raises(ValueError, match='item_id'):
        FieldEmbedding(INPUTS, frequencies={'item_id': np.ones(3)})
    layer = _built(l2=0.1, frequencies={'brand': np.ones(3), 'category': np.ones(5)})   # no 'brand' table here
    assert list(layer.frequencies) == ['category']


def test_config_round_trip_keeps_frequency_slots():
    layer = _built(l2=0.1, frequencies={'category': np.ones(5)})
    clone = FieldEmbedding.from_config(layer.get_config())
    clone(FEATURES)
    assert clone.model_inputs == INPUTS and clone.l2 == 0.1 and list(clone.frequencies) == ['category']


def test_linear_and_numeric_embeddings():
    linear = LinearEmbedding(INPUTS)
    out = linear(FEATURES)
    assert out['item_id'].shape == (3, 1) and out['hist_item_id'].shape == (3, 4, 1)
    np.testing.assert_array_equal(out['item_id'], 0.0)
    numeric = NumericEmbedding(['price'], 4)
    vectors = numeric(FEATURES)['price'].numpy()
    np.testing.assert_allclose(vectors, FEATURES['price'][:, None] * numeric.vectors.numpy()[0], rtol=1e-6)

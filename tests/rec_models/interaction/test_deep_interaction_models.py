"""What the registry-wide suites do not check of the deep interaction models (PNN, DCN, AutoInt, DeepFFM):
their extra outputs, their variants, and their configs."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402
from rec_models import registry  # noqa: E402

B, L, D = 16, 4, 4
SMALL = {'hidden_units': (8,), 'dropout': 0.0, 'l2': 0.0}

INPUTS = ModelInputs(fields=(
    InputField('user_id', 'categorical', 'user', table='user_id', vocab_size=20, embedding_dim=D),
    InputField('age', 'numeric', 'user'),
    InputField('item_id', 'categorical', 'item', table='item_id', vocab_size=15, embedding_dim=D),
    InputField('category', 'categorical', 'item', table='category', vocab_size=5, embedding_dim=D),
    InputField('hist_item_id', 'sequence', 'behavior', table='item_id', vocab_size=15, embedding_dim=D,
               max_length=L, query='item_id'),
), sequence_length='hist_length')
NUM_FIELDS = 4  # user_id, item_id, category, age: the sequence is a field only with use_behavior


def _features(seed=0, n=B):
    rng = np.random.default_rng(seed)
    length = rng.integers(0, L + 1, n)
    history = rng.integers(1, 15, (n, L)).astype(np.int64)
    history[np.arange(L)[None] >= length[:, None]] = 0
    return {'user_id': rng.integers(1, 20, n).astype(np.int64), 'age': rng.normal(size=n).astype(np.float32),
            'item_id': rng.integers(1, 15, n).astype(np.int64), 'category': rng.integers(1, 5, n).astype(np.int64),
            'hist_item_id': history, 'hist_length': length.astype(np.int64)}


def _build(name, **hparams):
    tf.keras.utils.set_random_seed(0)
    model = registry.build(name, INPUTS, {**SMALL, **hparams})
    model(_features())
    return model


@pytest.mark.parametrize('layers,heads', [(1, 1), (2, 3)])
def test_autoint_exposes_the_last_layers_attention_maps(layers, heads):
    model = _build('autoint', layers=layers, heads=heads, head_dim=4)
    outputs = model(_features(), training=False)
    maps = outputs['attention_maps'].numpy()
    assert maps.shape == (B, heads, NUM_FIELDS, NUM_FIELDS)
    assert (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=1e-5)
    _, last = model.interacting[-1](model.interacting[0](model.fields(_features())['vectors']), return_attention=True) \
        if layers == 2 else model.interacting[0](model.fields(_features())['vectors'], return_attention=True)
    np.testing.assert_allclose(maps, last.numpy(), rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(0)  # the initial embeddings are small and the maps nearly uniform: spread them
    for variable in model.trainable_variables:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    maps = model(_features(), training=False)['attention_maps'].numpy()
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.std(maps, axis=0).max() > 1e-3  # the maps depend on the example


def test_autoint_with_behavior_and_autoint_plus():
    plain = _build('autoint', use_behavior=True)
    assert plain(_features())['attention_maps'].shape[-1] == NUM_FIELDS + 1
    assert plain.deep is None
    plus = _build('autoint', deep=True)
    assert plus.deep is not None and plus(_features())['logits'].shape == (B,)
    assert len(plus.trainable_variables) > len(_build('autoint').trainable_variables)


def test_fat_deepffm_field_attention_depends_on_the_input():
    model = _build('fat_deepffm', score_activation='sigmoid')
    features = _features()
    scores = model(features, training=False)['field_attention'].numpy()
    assert scores.shape == (B, NUM_FIELDS, NUM_FIELDS)
    assert np.std(scores, axis=0).max() > 1e-4  # differs between the examples of one batch
    other = dict(features, item_id=(features['item_id'] % 14) + 1)
    assert not np.allclose(model(other, training=False)['field_attention'].numpy(), scores)
    assert model.field_names == ('user_id', 'age', 'item_id', 'category')


def test_fat_deepffm_default_scores_are_relu_and_deepffm_has_none():
    scores = _build('fat_deepffm')(_features())['field_attention'].numpy()
    assert (scores >= 0).all()
    assert 'field_attention' not in _build('deepffm')(_features())
    assert registry.validate('fat_deepffm')['attention'] is True
    assert _build('deepffm').hparams['attention'] is False


@pytest.mark.parametrize('interaction,width', [('hadamard', D * 6), ('inner', 6)])
def test_deepffm_interactions_feed_the_dnn(interaction, width):
    model = _build('deepffm', interaction=interaction, embedding_dim=D)
    assert model.deep.dense_layers[0].kernel.shape == (width, 8)  # n(n−1)/2 = 6 pairs of 4 fields


def test_deepffm_use_behavior_makes_the_history_a_field():
    model = _build('deepffm', use_behavior=True)
    features = _features()
    assert len(model.field_names) == NUM_FIELDS + 1
    assert model.linear(features)['weights'].shape == (B, NUM_FIELDS + 1)
    assert model.embedding(features).shape == (B, NUM_FIELDS + 1, NUM_FIELDS + 1, model.embedding.dim)
    with pytest.raises(ValueError, match='mode'):
        registry.build('deepffm', INPUTS, {'interaction': 'outer'})


def test_opnn_and_pnn_differ():
    inner, outer = _build('pnn'), _build('opnn')
    assert inner.hparams['product'] == 'inner' and outer.hparams['product'] == 'outer'
    assert type(inner.product).__name__ == 'InnerProduct' and type(outer.product).__name__ == 'OuterProduct'
    outer.fields.set_weights(inner.fields.get_weights())  # same field vectors, different product layers
    assert not np.allclose(inner(_features())['logits'], outer(_features())['logits'])
    with pytest.raises(ValueError, match='product'):
        registry.build('pnn', INPUTS, {'product': 'kronecker'})


def test_dcn_combines_cross_and_deep():
    model = _build('dcn', cross_layers=2)
    d = NUM_FIELDS * 8
    assert len(model.cross.kernels) == 2 and model.cross.kernels[0].shape == (d,)
    assert model.combination.kernel.shape == (d + 8, 1)


@pytest.mark.parametrize('name', ['pnn', 'opnn', 'dcn', 'autoint', 'deepffm', 'fat_deepffm'])
def test_config_round_trips(name):
    model = _build(name)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone(_features())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(_features())['logits'], model(_features())['logits'], rtol=1e-5, atol=1e-6)

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import dataclasses  # noqa: E402  pylint: disable=wrong-import-order

from feature_spec.model_inputs import (AuxiliaryInputs, FeatureCross, InputField, ModelInputs,  # noqa: E402
                                       SessionInputs)
from rec_models import registry  # noqa: E402
from rec_models.base import serving_signature  # noqa: E402
from rec_models.layers import FieldEmbedding  # noqa: E402

B, L, D = 32, 5, 4
K, T = 3, 2  # sessions, steps a session
SMALL = {'hidden_units': (16, 8), 'l2': 0.0, 'dropout': 0.0, 'transformer_dropout': 0.0,  # deterministic training calls
         'latent_dim': 16, 'lstm_units': 16}
MODELS = registry.names()


def _accepted(name):
    return registry.hparam_names(registry.get(name)[0])


def _small(name, **overrides):
    """SMALL and ``overrides``, less the hyper-parameters model ``name`` does not have."""
    return {k: v for k, v in {**SMALL, **overrides}.items() if k in _accepted(name)}


def _uses_history(name) -> bool:
    """Whether model ``name`` with its defaults reads the behaviour sequences (the FM family only with
    ``use_behavior``, off by default)."""
    return 'use_behavior' not in _accepted(name)


def _embedding_tables(model) -> dict:
    return {f'{layer.name}/{table}': weights for layer in model._flatten_layers()  # pylint: disable=protected-access
            if isinstance(layer, FieldEmbedding) for table, weights in layer.tables.items()}


def _categorical(name, group, vocab, table=None):
    return InputField(name, 'categorical', group, table=table or name, vocab_size=vocab, embedding_dim=D)


def _sequence(name, table, vocab, query, group='behavior', length=L):
    return InputField(name, 'sequence', group, table=table, vocab_size=vocab, embedding_dim=D, max_length=length,
                      query=query)


# The auxiliary groups of the synthetic spec (searches, DSTN's context and unclicked ads), each with its own length.
AUXILIARY = (
    AuxiliaryInputs('search', (
        _categorical('query', 'search', 9), _sequence('hist_query', 'query', 9, None, 'search', 4),
        _sequence('hist_query_time_gap', 'hist_query_time_gap', 8, None, 'search', 4)), 'query_history_length'),
    AuxiliaryInputs('page_context', (
        _sequence('context_item_id', 'item_id', 30, 'item_id', 'page_context', 3),
        _sequence('context_category', 'category', 6, 'category', 'page_context', 3)), 'context_length'),
    AuxiliaryInputs('unclicked', (
        _sequence('unclicked_item_id', 'item_id', 30, 'item_id', 'unclicked', 6),
        _sequence('unclicked_category', 'category', 6, 'category', 'unclicked', 6),
        _sequence('unclicked_time_gap', 'unclicked_time_gap', 8, None, 'unclicked', 6)), 'unclicked_length'),
)


INPUTS = ModelInputs(fields=(
    _categorical('user_id', 'user', 40), _categorical('gender', 'user', 3),
    InputField('purchase_power', 'numeric', 'user'),
    _categorical('item_id', 'item', 30), _categorical('category', 'item', 6),
    InputField('price', 'numeric', 'item'),
    _categorical('hour', 'context', 25),
    _sequence('hist_item_id', 'item_id', 30, 'item_id'), _sequence('hist_category', 'category', 6, 'category'),
    _sequence('hist_time_gap', 'hist_time_gap', 8, None),
), sequence_length='hist_length', crosses=(FeatureCross('gender_x_category', ('gender', 'category'), 50),))
INPUTS = dataclasses.replace(INPUTS, sessions=SessionInputs(
    fields=tuple(dataclasses.replace(f, name=f'{f.name}_sessions', kind='session', max_length=T)
                 for f in INPUTS.of_kind('sequence')), max_sessions=K, length_feature='session_lengths'),
    auxiliary=AUXILIARY)


def _features(seed=0, n=B):
    rng = np.random.default_rng(seed)
    length = rng.integers(0, L + 1, n)
    features = {'hist_length': length.astype(np.int64), 'click': rng.integers(0, 2, n),
                'request_id': np.arange(n).astype(np.int64)}
    for field in INPUTS.fields:
        if field.kind == 'numeric':
            features[field.name] = rng.normal(size=n).astype(np.float32)
        elif field.kind == 'categorical':
            features[field.name] = rng.integers(1, field.vocab_size, n).astype(np.int64)
        else:
            ids = rng.integers(1, field.vocab_size, (n, L)).astype(np.int64)
            ids[np.arange(L)[None] >= length[:, None]] = 0
            features[field.name] = ids
    sessions = rng.integers(0, T + 1, (n, K))
    sessions[np.arange(K)[None] >= rng.integers(0, K + 1, n)[:, None]] = 0  # empty slots after the used ones
    features['session_lengths'] = sessions.astype(np.int64)
    for field in INPUTS.sessions.fields:
        ids = rng.integers(1, field.vocab_size, (n, K, T)).astype(np.int64)
        ids[np.arange(T)[None, None] >= sessions[..., None]] = 0
        features[field.name] = ids.reshape(n, K * T)
    for group in AUXILIARY:
        steps = group.fields[-1].max_length
        lengths = rng.integers(0, steps + 1, n)
        features[group.length_feature] = lengths.astype(np.int64)
        for field in group.fields:
            if field.kind == 'categorical':
                features[field.name] = rng.integers(1, field.vocab_size, n).astype(np.int64)
            else:
                ids = rng.integers(1, field.vocab_size, (n, steps)).astype(np.int64)
                ids[np.arange(steps)[None] >= lengths[:, None]] = 0
                features[field.name] = ids
    return features


def _with_noisy_padding(features, seed=1):
    rng = np.random.default_rng(seed)
    noisy = dict(features)
    padded = np.arange(L)[None] >= features['hist_length'][:, None]
    for field in INPUTS.of_kind('sequence'):
        noisy[field.name] = np.where(padded, rng.integers(1, field.vocab_size, (len(padded), L)), features[field.name])
    session_padded = (np.arange(T)[None, None] >= features['session_lengths'][..., None]).reshape(len(padded), K * T)
    for field in INPUTS.sessions.fields:
        noisy[field.name] = np.where(session_padded, rng.integers(1, field.vocab_size, session_padded.shape),
                                     features[field.name])
    for group in AUXILIARY:
        for field in group.fields:
            if field.kind == 'sequence':
                group_padded = np.arange(field.max_length)[None] >= features[group.length_feature][:, None]
                noisy[field.name] = np.where(group_padded, rng.integers(1, field.vocab_size, group_padded.shape),
                                             features[field.name])
    return noisy


@pytest.mark.parametrize('name', MODELS)
def test_outputs_and_gradients(name):
    model = registry.build(name, INPUTS, _small(name))
    features = _features()
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = model.total_loss({'click': features['click']}, outputs, features)
    for key in ('logits', 'probabilities'):
        assert outputs[key].shape == (B,) and outputs[key].dtype == tf.float32
    np.testing.assert_allclose(outputs['probabilities'], tf.sigmoid(outputs['logits']), rtol=1e-6)
    assert model.losses == []
    tables = _embedding_tables(model)
    assert tables
    gradients = tape.gradient(loss, list(tables.values()))
    for table, gradient in zip(tables, gradients):
        assert gradient is not None, table
        assert float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(gradient)))) > 0, table


@pytest.mark.parametrize('name', MODELS)
def test_fit_decreases_the_loss_on_a_learnable_rule(name):
    tf.keras.utils.set_random_seed(0)
    features = _features(n=256)
    # Clicked iff the candidate's category appears in the history (or, for history-free models, by item).
    in_history = (features['hist_category'] == features['category'][:, None]).any(axis=1)
    labels = in_history if _uses_history(name) else (features['item_id'] % 2 == 0)
    model = registry.build(name, INPUTS, _small(name, l2=1e-4))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02))
    before = model.evaluate(features, labels.astype(np.float32), batch_size=64, verbose=0, return_dict=True)
    history = model.fit(features, {'click': labels.astype(np.float32)}, batch_size=64, epochs=8, verbose=0)
    after = model.evaluate(features, labels.astype(np.float32), batch_size=64, verbose=0, return_dict=True)
    assert {'loss', 'auc'} <= set(history.history) == {metric.name for metric in model.metrics}
    assert after['loss'] < before['loss'] - 0.05, (before, after)
    assert after['auc'] > 0.75, after


@pytest.mark.parametrize('use_behavior', [True, 'learned'])
@pytest.mark.parametrize('name', MODELS)
def test_padded_history_steps_do_not_change_the_outputs(name, use_behavior):
    if use_behavior == 'learned' and 'use_behavior' not in _accepted(name):
        pytest.skip('the model reads the history its own way')
    model = registry.build(name, INPUTS, _small(name, use_behavior=use_behavior))
    features = _features()
    noisy = _with_noisy_padding(features)
    assert any(not np.array_equal(noisy[k], features[k]) for k in noisy)
    for training in (True, False):
        clean = model(features, training=training)
        other = model(noisy, training=training)
        np.testing.assert_allclose(other['logits'], clean['logits'], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_mini_batch_aware_l2_enters_the_training_loss_only(name):
    model = registry.build(name, INPUTS, _small(name, l2=0.1))
    features = _features()
    labels = {'click': features['click']}
    model(features, training=False)
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:  # first-order weights start at zero, and so would their penalty
        variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(np.float32))
    outputs = model(features, training=True)
    penalty = float(tf.add_n(model.losses))
    assert penalty > 0
    assert float(model.total_loss(labels, outputs, features)) == pytest.approx(
        float(model.compute_loss(labels, outputs, features)) + penalty, rel=1e-5)
    model(features, training=False)
    assert model.losses == []


def test_compile_rejects_a_loss_the_model_owns():
    with pytest.raises(ValueError, match='loss'):
        registry.build('din', INPUTS, _small('din')).compile(optimizer='adam', loss='binary_crossentropy')


def test_registry_names_and_rejections():
    assert registry.names() == ['afm', 'atrank', 'autoint', 'base_model', 'bst', 'dcn', 'deepffm', 'deepfm', 'deepmcp', 'dien',
                                'dien_agru', 'dien_aigru', 'din', 'dmin', 'dmr', 'dsin', 'dstn', 'dstn_pooling',
                                'dstn_self_attention', 'dupn', 'fat_deepffm', 'ffm', 'fm',
                                'fnn', 'lr', 'nfm', 'opnn', 'pnn', 'poly2', 'transfm', 'wide_deep']
    assert registry.validate('base_model')['pooling'] == 'sum'
    with pytest.raises(ValueError, match="'dien_v9'.*deepfm"):
        registry.build('dien_v9', INPUTS)
    with pytest.raises(ValueError, match='hiden_units'):
        registry.build('din', INPUTS, {'hiden_units': (8,)})
    with pytest.raises(ValueError, match='frequencies'):
        registry.validate('deepfm', {'frequencies': None})


def test_frequencies_flow_to_the_embedding_and_config_round_trips():
    counts = np.arange(30, dtype=np.float32)
    model = registry.build('din', INPUTS, _small('din'), frequencies={'item_id': counts})
    model(_features())
    np.testing.assert_array_equal(model.embedding.frequencies['item_id'].numpy(), np.maximum(counts, 1.0))
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone(_features())['logits'].shape == (B,)


def test_saved_model_reproduces_predictions(tmp_path):
    model = registry.build('din', INPUTS, _small('din'))
    features = _features()
    model.compile(optimizer='adam')
    model.fit(features, features['click'].astype(np.float32), batch_size=16, epochs=1, verbose=0)
    serve = tf.function(lambda batch: model(batch, training=False), input_signature=[serving_signature(INPUTS)],
                        autograph=False)
    tf.saved_model.save(model, str(tmp_path), signatures={'serving_default': serve})
    loaded = tf.saved_model.load(str(tmp_path))
    inputs = {name: tf.constant(features[name]) for name in serving_signature(INPUTS)}
    served = loaded.signatures['serving_default'](**inputs)
    expected = model(features, training=False)
    np.testing.assert_allclose(served['probabilities'], expected['probabilities'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served['attention_weights'], expected['attention_weights'], rtol=1e-5, atol=1e-6)

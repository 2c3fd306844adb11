"""Every registered model on a toy input set: outputs and gradients, learning a rule, padding invariance, the
mini-batch-aware L2, the registry, config round trips and the SavedModel."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.base import serving_signature  # noqa: E402

from toy_inputs import (B, INPUTS, L, LABELS, _accepted, _embedding_tables, _features, _small,  # noqa: E402
                        _uses_history, _with_noisy_padding, every_model)


def _labels(features):
    return {label: features[label] for label in LABELS}


@pytest.mark.parametrize('name', every_model())
def test_outputs_and_gradients(name):
    model = registry.build(name, INPUTS, _small(name))
    features = _features()
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = model.total_loss(_labels(features), outputs, features)
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


@pytest.mark.parametrize('name', every_model())
def test_fit_decreases_the_loss_on_a_learnable_rule(name):
    tf.keras.utils.set_random_seed(0)
    features = _features(n=256)
    # Clicked iff the candidate's category appears in the history (or, for history-free models, by item).
    in_history = (features['hist_category'] == features['category'][:, None]).any(axis=1)
    labels = in_history if _uses_history(name) else (features['item_id'] % 2 == 0)
    model = registry.build(name, INPUTS, _small(name, l2=1e-4))
    model.compile(optimizer=tf.keras.optimizers.Adam(0.02))
    targets = {label: labels.astype(np.float32) for label in LABELS}
    before = model.evaluate(features, targets, batch_size=64, verbose=0, return_dict=True)
    history = model.fit(features, targets, batch_size=64, epochs=8, verbose=0)
    after = model.evaluate(features, targets, batch_size=64, verbose=0, return_dict=True)
    assert {'loss', model.primary_metric} <= set(history.history) == {metric.name for metric in model.metrics}
    assert after['loss'] < before['loss'] - 0.05, (before, after)
    assert after[model.primary_metric] > 0.75, after


@pytest.mark.parametrize('use_behavior', [True, 'learned'])
@pytest.mark.parametrize('name', every_model())
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


@pytest.mark.parametrize('name', ['din', 'base_model', 'dien'])
def test_a_batch_of_short_histories_is_cut_to_its_longest_and_scores_the_same(name):
    """The models that cut the behaviour sequences to the batch's longest history (trim_padding): a batch of
    histories of at most 2 steps (2 steps computed) scores as with all L steps computed, in inference and in
    training (Dice's statistics see valid steps only); per-step outputs keep L steps."""
    model = registry.build(name, INPUTS, _small(name))
    short = _features(n=12)
    short['hist_length'] = np.minimum(short['hist_length'], 2)
    for field in INPUTS.of_kind('sequence'):
        short[field.name][np.arange(L)[None] >= short['hist_length'][:, None]] = 0
    def untrimmed(features):
        return features, tf.sequence_mask(features['hist_length'], L)

    for training in (False, True):   # inference first: a training call moves Dice's moving statistics
        trimmed = model(short, training=training)
        model.trim_padding = untrimmed
        full = model(short, training=training)
        del model.trim_padding
        np.testing.assert_allclose(trimmed['logits'], full['logits'], rtol=1e-5, atol=1e-5)
        if 'attention_weights' in full:
            assert trimmed['attention_weights'].shape == (12, L)
            np.testing.assert_allclose(trimmed['attention_weights'], full['attention_weights'], rtol=1e-5, atol=1e-5)
    history_free = {k: v.copy() for k, v in short.items()}
    history_free['hist_length'][:] = 0
    assert np.all(np.isfinite(model(history_free, training=False)['logits']))  # no history in the batch: one (padded) step


@pytest.mark.parametrize('name', every_model())
def test_mini_batch_aware_l2_enters_the_training_loss_only(name):
    model = registry.build(name, INPUTS, _small(name, l2=0.1))
    features = _features()
    labels = _labels(features)
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


def test_registry_names_families_and_rejections():
    families = registry.names_by_family()
    assert families['interaction'] == ['afm', 'autoint', 'dcn', 'deepffm', 'deepfm', 'fat_deepffm', 'ffm', 'fm', 'fnn',
                                       'lr', 'nfm', 'opnn', 'pnn', 'poly2', 'transfm', 'wide_deep']
    assert families['sequence'] == ['atrank', 'base_model', 'bst', 'deepmcp', 'dien', 'dien_agru', 'dien_aigru', 'din',
                                    'dmin', 'dmr', 'dsin', 'dstn', 'dstn_pooling', 'dstn_self_attention', 'dupn',
                                    'dupn_multitask']
    assert families['multitask'] == ['adversarial_debiasing', 'cvr_on_clicks', 'esm2', 'esmm', 'mmoe', 'omoe', 'pal',
                                     'position_blind', 'position_feature', 'privileged_distillation', 'shared_bottom',
                                     'youtube_ranker']
    assert registry.names() == sorted(sum(families.values(), []))
    assert registry.family('din') == 'sequence' and registry.family('mmoe') == 'multitask'
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

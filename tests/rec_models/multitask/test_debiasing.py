"""The position-debiasing models: YouTube's shallow tower (training only), PAL's product (both modules trained), the
adversarial bias net's two-step update and its serving, and the position baselines."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, TRAINING_ONLY, _features, _small  # noqa: E402  pylint: disable=wrong-import-order

POSITION = TRAINING_ONLY[0]


def _serving(features):
    return {k: v for k, v in features.items() if k not in ('position', 'page_dwell')}


def test_the_shallow_tower_adds_to_the_engagement_logit_in_training_only():
    model = registry.build('youtube_ranker', INPUTS, _small('youtube_ranker'))
    features = _features()
    trained = model(features, training=True)
    served = model(_serving(features), training=False)
    np.testing.assert_allclose(model(features, training=False)['probabilities'], served['probabilities'])
    assert 'shallow_logits' in trained and 'shallow_logits' not in served
    untouched = model(_serving(features), training=True)   # no position: nothing added
    np.testing.assert_allclose(trained['click_logits'] - trained['shallow_logits'], untouched['click_logits'],
                               rtol=1e-5, atol=1e-6)
    dropping = registry.build('youtube_ranker', INPUTS, {**_small('youtube_ranker'), 'position_dropout': 0.999999})
    unknown = {**features, 'position': np.zeros_like(features['position'])}
    np.testing.assert_allclose(dropping(features, training=True)['shallow_logits'],    # every position dropped
                               dropping(unknown, training=True)['shallow_logits'], rtol=1e-6)


def test_pal_trains_on_the_product_and_serves_the_click_given_seen():
    model = registry.build('pal', INPUTS, _small('pal'))
    features = _features()
    labels = {'click': features['click'].astype(np.float32)}
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = model.compute_loss(labels, outputs, features)
    p = (outputs['probabilities'] * outputs['seen']).numpy()
    y = labels['click']
    assert float(loss) == pytest.approx(float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)))), rel=1e-4)
    variables = model.ctr_module.trainable_variables + model.position_module.trainable_variables
    gradients = tape.gradient(loss, variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)
    served = model(_serving(features), training=False)
    assert 'seen' not in served
    np.testing.assert_allclose(served['probabilities'], tf.sigmoid(served['logits']), rtol=1e-6)


def test_the_adversarial_update_moves_the_bias_net_then_the_rest():
    tf.keras.utils.set_random_seed(0)
    model = registry.build('adversarial_debiasing', INPUTS, {**_small('adversarial_debiasing'),
                                                             'adversarial_weight': 0.5})
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    features = _features()
    labels = {'click': features['click'].astype(np.float32)}
    model(features)
    steps = model.update_steps()
    assert [s.name for s in steps] == ['bias', 'main'] and steps[0].tasks == ('bias',)
    bias = {id(v) for v in model.bias_net.trainable_variables}
    assert bias and bias.isdisjoint({id(v) for v in model.main_variables()})
    before = {v.name: v.numpy().copy() for v in model.trainable_variables}
    logs = model.train_step((features, labels))
    moved = {v.name for v in model.trainable_variables if np.abs(v.numpy() - before[v.name]).max() > 0}
    assert {v.name for v in model.bias_net.trainable_variables} <= moved
    assert {v.name for v in model.output_layer.trainable_variables} <= moved
    assert {'bias_mse', 'decorrelation', 'auc', 'loss'} <= set(logs)
    # b: the position CTR in training, the first position's at serving.
    outputs = model(features, training=False)
    np.testing.assert_allclose(outputs['position_ctr'], np.array(POSITION.label_rates)[features['position']])
    served = model(_serving(features), training=False)
    np.testing.assert_allclose(served['position_ctr'], POSITION.label_rates[POSITION.first_id])
    assert 'bias_prediction' not in served


def test_the_adversarial_loss_weights_and_the_bias_step_alone():
    model = registry.build('adversarial_debiasing', INPUTS, {**_small('adversarial_debiasing'),
                                                             'adversarial_weight': 0.3})
    features = _features()
    outputs = model(features, training=True)
    labels = {'click': features['click'].astype(np.float32)}
    losses = model.task_losses(labels, outputs, features)
    b, b_hat = outputs['position_ctr'].numpy(), outputs['bias_prediction'].numpy()
    assert float(losses['bias']) == pytest.approx(float(np.mean((b - b_hat) ** 2)), rel=1e-5)
    assert float(losses['decorrelation']) == pytest.approx(np.cov(b, b_hat)[0, 1] ** 2, rel=1e-3, abs=1e-12)
    assert float(model.compute_loss(labels, outputs, features, tasks=('click', 'decorrelation'))) == pytest.approx(
        0.7 * float(losses['click']) + 0.3 * float(losses['decorrelation']), rel=1e-5)


def test_the_position_feature_is_served_at_the_first_position():
    model = registry.build('position_feature', INPUTS, _small('position_feature'))
    features = _features()
    first = {**features, 'position': np.full_like(features['position'], POSITION.first_id)}
    np.testing.assert_allclose(model(_serving(features))['probabilities'], model(first)['probabilities'], rtol=1e-6)
    assert np.abs(model(features)['probabilities'].numpy() - model(first)['probabilities'].numpy()).max() > 1e-6
    blind = registry.build('position_blind', INPUTS, _small('position_blind'))
    np.testing.assert_allclose(blind(_serving(features))['probabilities'], blind(features)['probabilities'])
    with pytest.raises(ValueError, match="kind 'position'"):
        registry.build('pal', INPUTS.__class__(**{**INPUTS.__dict__, 'training_only': ()}))

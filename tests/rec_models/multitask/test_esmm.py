"""ESMM and ESM2 against their equations: the products, ESM2's conversion rate, and the losses over all impressions;
the CVR model trained on clicked impressions only."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, _features, _small  # noqa: E402  pylint: disable=wrong-import-order


def _log_loss(y, p):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def _labels(features):
    return {name: features[name].astype(np.float32) for name in ('click', 'cart', 'purchase', 'satisfied')}


def test_esmm_serves_the_product_and_trains_ctr_and_ctcvr_over_all_impressions():
    model = registry.build('esmm', INPUTS, _small('esmm'))
    features = _features()
    outputs = model(features, training=False)
    np.testing.assert_allclose(outputs['ctcvr'], outputs['ctr'] * outputs['cvr'], rtol=1e-6)
    np.testing.assert_allclose(outputs['probabilities'], outputs['ctr'])
    labels = _labels(features)
    expected = _log_loss(labels['click'], outputs['ctr'].numpy()) + _log_loss(labels['purchase'],
                                                                             outputs['ctcvr'].numpy())
    assert float(model.compute_loss(labels, outputs, features)) == pytest.approx(expected, rel=1e-4)
    assert [h.name for h in model.served_heads(model.hparams)] == ['ctr', 'cvr', 'ctcvr']


def test_the_cvr_baseline_trains_pcvr_on_clicked_impressions_only():
    model = registry.build('cvr_on_clicks', INPUTS, _small('cvr_on_clicks'))
    features = _features()
    outputs = model(features, training=False)
    labels = _labels(features)
    clicked = labels['click'] == 1
    expected = _log_loss(labels['click'], outputs['ctr'].numpy()) + _log_loss(labels['purchase'][clicked],
                                                                             outputs['cvr'].numpy()[clicked])
    assert float(model.compute_loss(labels, outputs, features)) == pytest.approx(expected, rel=1e-4)


def test_esm2_conversion_rate_and_products_follow_the_paper():
    model = registry.build('esm2', INPUTS, _small('esm2'))
    features = _features()
    rng = np.random.default_rng(0)
    model(features)
    for variable in model.trainable_variables:   # towers far from 0.5 so that the equations differ visibly
        variable.assign(rng.normal(0, 0.15, variable.shape).astype(np.float32))
    outputs = {k: v.numpy() for k, v in model(features, training=False).items() if k != 'attention_weights'}
    y1, y2, y3, y4 = (outputs[k] for k in ('ctr', 'd_action', 'buy_after_d', 'buy_after_o'))
    np.testing.assert_allclose(outputs['cvr'], y2 * y3 + (1 - y2) * y4, rtol=1e-5)
    assert np.abs(outputs['cvr'] - (1 - y2 * y3) * y4).max() > 1e-3   # not the public implementation's bug
    np.testing.assert_allclose(outputs['ctavr'], y1 * y2, rtol=1e-5)
    np.testing.assert_allclose(outputs['ctcvr'], y1 * outputs['cvr'], rtol=1e-5)
    labels = _labels(features)
    expected = (_log_loss(labels['click'], y1) + _log_loss(labels['cart'], outputs['ctavr'])
                + _log_loss(labels['purchase'], outputs['ctcvr']))
    assert float(model.compute_loss(labels, {k: tf.constant(v) for k, v in outputs.items()}, features)) == \
        pytest.approx(expected, rel=1e-4)
    assert [h.name for h in model.served_heads(model.hparams)] == ['ctr', 'cvr', 'ctavr', 'ctcvr']

"""The product task (ESMM's pCTCVR = pCTR · pCVR): the log loss of the product, computed stably from the factors'
logits, and the product it serves."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.tasks import ProductTask  # noqa: E402
from rec_models.tasks.product import log1mexp  # noqa: E402

CTR = np.array([1.0, -2.0, 0.3, 2.5], np.float32)
CVR = np.array([-0.5, 1.0, -1.5, 0.2], np.float32)
BUY = np.array([1, 0, 0, 1], np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def test_loss_is_the_log_loss_of_the_product_of_the_factors():
    task = ProductTask('purchase', ('ctr', 'cvr'), head='ctcvr')
    p = _sigmoid(CTR) * _sigmoid(CVR)
    outputs = {'ctr_logits': CTR, 'cvr_logits': CVR, 'ctr': _sigmoid(CTR), 'cvr': _sigmoid(CVR)}
    expected = -(BUY * np.log(p) + (1 - BUY) * np.log(1 - p)).mean()
    assert float(task.compute_loss({'purchase': BUY}, outputs, None)) == pytest.approx(expected, rel=1e-5)
    without_logits = {'ctr': _sigmoid(CTR).astype(np.float32), 'cvr': _sigmoid(CVR).astype(np.float32)}
    assert float(task.compute_loss({'purchase': BUY}, without_logits, None)) == pytest.approx(expected, rel=1e-4)
    served = task.add_outputs(dict(without_logits))
    np.testing.assert_allclose(served['ctcvr'], p, rtol=1e-5)


def test_extreme_logits_give_finite_losses_and_gradients():
    task = ProductTask('purchase', ('ctr', 'cvr'), head='ctcvr')
    ctr = tf.Variable([60.0, -60.0, 60.0, 1e-3])
    cvr = tf.Variable([60.0, -60.0, -60.0, 1e-3])
    with tf.GradientTape() as tape:
        outputs = {'ctr_logits': ctr, 'cvr_logits': cvr, 'ctr': tf.sigmoid(ctr), 'cvr': tf.sigmoid(cvr)}
        loss = task.compute_loss({'purchase': np.array([0, 1, 1, 0], np.float32)}, outputs, None)
    gradients = tape.gradient(loss, [ctr, cvr])
    assert np.isfinite(float(loss)) and all(np.all(np.isfinite(g.numpy())) for g in gradients)
    x = np.array([-1e-6, -0.1, -0.69, -0.7, -5.0, -50.0])
    np.testing.assert_allclose(log1mexp(tf.constant(x)), np.log(-np.expm1(x)), rtol=1e-5, atol=1e-12)


def test_a_primary_product_is_not_served_and_needs_two_factors():
    task = ProductTask('click', ('probabilities', 'seen'), name='click', served=False)
    assert [m.name for m in task.task_metrics] == ['auc']
    assert 'seen' not in task.add_outputs({'probabilities': CTR})
    assert not task.active({'probabilities': CTR})
    with pytest.raises(ValueError, match='two or more'):
        ProductTask('click', ('ctr',), head='x')

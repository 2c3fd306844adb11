"""The binary task: its log loss, its condition, its AUC under the head's name, and the outputs it serves."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.metrics import auc  # noqa: E402
from rec_models.tasks import BinaryTask  # noqa: E402

LOGITS = np.array([2.0, -1.0, 0.5, -3.0, 0.0, 1.5], np.float32)
CLICK = np.array([1, 0, 1, 0, 0, 1], np.float32)
BUY = np.array([1, 0, 0, 0, 0, 1], np.float32)


def _log_loss(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_loss_is_the_mean_log_loss_of_the_sigmoid():
    task = BinaryTask('click')
    p = 1 / (1 + np.exp(-LOGITS))
    loss = task.compute_loss({'click': CLICK}, {'logits': LOGITS}, None)
    assert float(loss) == pytest.approx(_log_loss(CLICK, p).mean(), rel=1e-6)


def test_a_condition_restricts_the_loss_and_the_auc_to_its_rows():
    task = BinaryTask('purchase', head='cvr', condition='click')
    p = 1 / (1 + np.exp(-LOGITS))
    labels = {'click': CLICK, 'purchase': BUY}
    loss = task.compute_loss(labels, {'cvr_logits': LOGITS}, None)
    clicked = CLICK == 1
    assert float(loss) == pytest.approx(_log_loss(BUY[clicked], p[clicked]).mean(), rel=1e-6)
    task.update_metrics(labels, {'cvr_logits': LOGITS}, loss)
    assert [m.name for m in task.task_metrics] == ['cvr_auc', 'cvr_loss']
    assert float(task.auc.result()) == pytest.approx(auc(BUY[clicked], p[clicked]), abs=2e-3)
    assert float(task.compute_loss({'click': np.zeros(6), 'purchase': BUY}, {'cvr_logits': LOGITS}, None)) == 0.0


def test_served_heads_are_added_and_probabilities_can_be_read_directly():
    served = BinaryTask('click', head='ctr').add_outputs({'ctr_logits': tf.constant(LOGITS)})
    np.testing.assert_allclose(served['ctr'], tf.sigmoid(LOGITS), rtol=1e-6)
    assert 'match' not in BinaryTask('click', head='match', served=False).add_outputs({'match_logits': LOGITS})
    direct = BinaryTask('purchase', head='cvr', from_logits=False)
    p = np.array([0.9, 0.2, 0.6, 0.1, 0.5, 0.7], np.float32)
    assert direct.required_outputs() == ('cvr',)
    assert float(direct.compute_loss({'purchase': BUY}, {'cvr': p}, None)) == pytest.approx(
        _log_loss(BUY, p).mean(), rel=1e-5)


def test_the_single_heads_metrics_keep_their_plain_names_and_a_task_is_inactive_without_its_outputs():
    task = BinaryTask('click')
    assert [m.name for m in task.task_metrics] == ['auc']
    assert task.active({'logits': LOGITS}) and not task.active({'probabilities': LOGITS})
    with pytest.raises(ValueError, match='weight'):
        BinaryTask('click', weight=-1.0)
    with pytest.raises(KeyError, match="no label 'click'"):
        task.compute_loss({'purchase': BUY}, {'logits': LOGITS}, None)

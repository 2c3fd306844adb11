"""The auxiliary loss: a loss the model computes itself, read from its outputs, weighted, reported under its key."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.tasks import AuxiliaryLoss  # noqa: E402


def test_the_loss_is_the_output_and_it_is_reported_under_its_key_when_present():
    task = AuxiliaryLoss('aux_loss', weight=0.3)
    assert task.active({'aux_loss': tf.constant(1.5)}) and not task.active({'logits': tf.zeros(2)})
    assert float(task.compute_loss({}, {'aux_loss': tf.constant(1.5)}, None)) == 1.5
    task.update_metrics({}, {}, tf.constant(1.5))
    task.update_metrics({}, {}, tf.constant(0.5))
    assert [m.name for m in task.task_metrics] == ['aux_loss'] and float(task.tracker.result()) == 1.0
    assert task.weight == 0.3 and AuxiliaryLoss('gate_entropy', weight=0.0).weight == 0.0
    with pytest.raises(ValueError, match='weight'):
        AuxiliaryLoss(weight=-0.1)

"""The distillation task: (1 − λ_t) · L(y, student) + λ_t · L(teacher, student), λ ramped up, no gradient into the
teacher."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.tasks import DistillationTask  # noqa: E402

CLICK = np.array([1, 0, 0, 1], np.float32)


def _log_loss(y, p):
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_the_weight_ramps_up_and_the_loss_mixes_labels_and_soft_labels():
    task = DistillationTask('click', distillation_weight=0.6, ramp_steps=4)
    student, teacher = np.array([0.5, -1.0, 0.2, 2.0], np.float32), np.array([1.5, -2.0, -0.5, 1.0], np.float32)
    outputs = {'logits': student, 'teacher_logits': teacher}
    p_s, p_t = 1 / (1 + np.exp(-student)), 1 / (1 + np.exp(-teacher))
    hard, soft = _log_loss(CLICK, p_s), _log_loss(p_t, p_s)
    for step in range(6):
        weight = 0.6 * min(1.0, step / 4)
        loss = task.compute_loss({'click': CLICK}, outputs, None, training=True)
        assert float(loss) == pytest.approx((1 - weight) * hard + weight * soft, rel=1e-5), step
    assert int(task.steps.numpy()) == 6
    task.compute_loss({'click': CLICK}, outputs, None)   # evaluation does not count a step
    assert int(task.steps.numpy()) == 6


def test_no_gradient_of_the_distillation_term_reaches_the_teacher():
    task = DistillationTask('click', distillation_weight=1.0, ramp_steps=0)
    student, teacher = tf.Variable([0.5, -1.0, 0.2, 2.0]), tf.Variable([1.5, -2.0, -0.5, 1.0])
    with tf.GradientTape() as tape:
        loss = task.compute_loss({'click': CLICK}, {'logits': student, 'teacher_logits': teacher}, None)
    student_gradient, teacher_gradient = tape.gradient(loss, [student, teacher])
    assert teacher_gradient is None and float(tf.reduce_sum(tf.abs(student_gradient))) > 0
    assert [m.name for m in task.task_metrics] == ['auc', 'distillation_loss']
    with pytest.raises(ValueError, match='distillation_weight'):
        DistillationTask('click', distillation_weight=1.5)

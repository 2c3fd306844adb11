"""Privileged-feature distillation: the teacher reads the privileged feature, the student does not and is what is
served; the student learns from the teacher without sending it gradients."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, _features, _small  # noqa: E402  pylint: disable=wrong-import-order


def test_the_teacher_reads_the_privileged_feature_and_only_the_student_is_served():
    model = registry.build('privileged_distillation', INPUTS, _small('privileged_distillation'))
    features = _features()
    outputs = model(features, training=False)
    other = model({**features, 'page_dwell': features['page_dwell'] + 1.0}, training=False)
    assert np.abs(outputs['teacher'].numpy() - other['teacher'].numpy()).max() > 1e-4
    np.testing.assert_allclose(outputs['probabilities'], other['probabilities'])
    served = model({k: v for k, v in features.items() if k != 'page_dwell'}, training=False)
    assert 'teacher' not in served
    np.testing.assert_allclose(served['probabilities'], outputs['probabilities'])


def test_the_distillation_term_sends_no_gradient_to_the_teacher_tower():
    model = registry.build('privileged_distillation', INPUTS, {**_small('privileged_distillation'),
                                                               'distillation_weight': 1.0, 'ramp_steps': 0})
    features = _features()
    labels = {'click': features['click'].astype(np.float32)}
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = model.task(name='click').compute_loss(labels, outputs, features, training=True)
    gradients = tape.gradient(loss, model.teacher.trainable_variables + model.student.trainable_variables)
    teacher = gradients[:len(model.teacher.trainable_variables)]
    assert all(g is None for g in teacher)
    assert all(g is not None for g in gradients[len(teacher):])
    alone = registry.build('privileged_distillation', INPUTS, {**_small('privileged_distillation'), 'teacher': False})
    assert 'teacher' not in alone(features, training=True) and [t.name for t in alone.tasks] == ['click']

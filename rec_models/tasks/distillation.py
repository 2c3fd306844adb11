"""The distillation task: a student head learns from the click and from a teacher's soft labels (privileged-feature
distillation, Xu et al., *Privileged Features Distillation at Taobao Recommendations*, KDD 2020)."""

from typing import Optional

import tensorflow as tf

from rec_models.tasks.binary import BinaryTask, binary_log_loss, logits_key


class DistillationTask(BinaryTask):
    """The student's objective of synchronous distillation:

        L_s = (1 − λ_t) · L(y, σ(z_s)) + λ_t · L(σ(z_t), σ(z_s)),     λ_t = λ · min(1, t / T)

    L the log loss, z_s the student's logits (the served head), z_t the teacher's, taken as constants: no gradient
    of the distillation term reaches the teacher (the teacher learns from the labels alone, through its own
    :class:`~rec_models.tasks.BinaryTask`). λ ramps up linearly over the first T = ``ramp_steps`` training steps,
    since the paper starts distilling once the teacher has learned something (Choice: a linear ramp from 0; the paper
    only says λ grows from a small value). The step count t is a model variable, saved with it.

    Args:
        label: the label column.
        teacher: outputs key of the teacher's probabilities (its logits under ``<teacher>_logits``).
        distillation_weight: λ.
        ramp_steps: T (0: λ from the first step).
        head, probabilities, auc_thresholds, name: as :class:`~rec_models.tasks.BinaryTask` (the student's head).
    """

    def __init__(self, label: str, teacher: str = 'teacher', distillation_weight: float = 0.5,
                 ramp_steps: int = 1000, head: str = '', probabilities: Optional[str] = None,
                 auc_thresholds: int = 1000, name: Optional[str] = None):
        super().__init__(label, head=head, probabilities=probabilities, auc_thresholds=auc_thresholds,
                         name=name or 'distillation')
        if not 0 <= distillation_weight <= 1 or ramp_steps < 0:
            raise ValueError(f'distillation_weight must be in [0, 1] and ramp_steps ≥ 0, got {distillation_weight}, '
                             f'{ramp_steps}')
        self.teacher_logits = logits_key(teacher)
        self.distillation_weight = distillation_weight
        self.ramp_steps = ramp_steps
        self.steps = self.add_weight(name='steps', shape=(), dtype=tf.int64, initializer='zeros', trainable=False)
        self.distillation_tracker = tf.keras.metrics.Mean(name=self.metric_name('distillation_loss'))

    def required_outputs(self):
        return super().required_outputs() + (self.teacher_logits,)

    def current_weight(self):
        """λ_t at the current step."""
        if not self.ramp_steps:
            return tf.constant(self.distillation_weight)
        progress = tf.cast(self.steps, tf.float32) / float(self.ramp_steps)
        return self.distillation_weight * tf.minimum(progress, 1.0)

    def distillation_loss(self, outputs):
        """L(σ(z_t), σ(z_s)), the teacher's probabilities as constant soft labels."""
        soft = tf.stop_gradient(tf.sigmoid(tf.reshape(outputs[self.teacher_logits], [-1])))
        return tf.reduce_mean(binary_log_loss(soft, logits=tf.reshape(outputs[self.logits], [-1])))

    def compute_loss(self, labels, outputs, features, training=False):
        weight = self.current_weight()
        if training:
            self.steps.assign_add(1)
        hard = super().compute_loss(labels, outputs, features, training)
        return (1.0 - weight) * hard + weight * self.distillation_loss(outputs)

    def update_metrics(self, labels, outputs, loss):
        super().update_metrics(labels, outputs, loss)
        self.distillation_tracker.update_state(self.distillation_loss(outputs))

    @property
    def task_metrics(self):
        return super().task_metrics + [self.distillation_tracker]



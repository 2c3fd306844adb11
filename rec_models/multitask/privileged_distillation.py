"""Privileged-feature distillation (Xu, Li, Ding, Gao, Wang, Zhang, Liu, Wang and Jiang, *Privileged Features
Distillation at Taobao Recommendations*, KDD 2020).

Privileged features X* are known when the training log is written but not when a request is served (the spec's
``privileged`` columns: the page dwell here). A teacher reads them, a student does not, and both are trained at once:

    min_{W_s, W_t}  (1 − λ) · L(y, f_s(X)) + λ · L(f_t(X, X*), f_s(X)) + L(y, f_t(X, X*))

with no gradient of the distillation term into the teacher (:class:`~rec_models.tasks.DistillationTask`; its soft
labels are constants) and λ ramped up over ``ramp_steps`` training steps (the paper starts distilling once the
teacher has learned something). Teacher and student share the embeddings (the family's bottom); only the student
is served (``probabilities``); the teacher's probabilities are the ``teacher`` output whenever the batch has X*.

``teacher=False`` leaves the teacher out: the student alone, the benchmark's reference.

Choices: the teacher is an MLP over [the shared input, X*], numerics as they are and ids through their own
embedding table; a privileged id column shares no table with the served features.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import NUMERIC, PRIVILEGED, ModelInputs
from rec_models.layers import FieldEmbedding
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import LOGITS, BinaryTask, DistillationTask

TEACHER = 'teacher'


@register('privileged_distillation')
class PrivilegedDistillation(MultiTaskModel):
    """Student and teacher. ``call → {'logits', 'probabilities' (the student), and with X* 'teacher',
    'teacher_logits'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        hidden_units, activation, dropout: the student's and the teacher's MLPs.
        distillation_weight: λ.
        ramp_steps: the training steps over which λ ramps up from 0.
        teacher: False trains the student alone.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu', dropout=0.2,
                 distillation_weight=0.5, ramp_steps=1000, teacher=True, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {**self.bottom_hparams, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout, 'distillation_weight': distillation_weight, 'ramp_steps': ramp_steps,
                        'teacher': teacher}
        self.student = self.tower(hidden_units, activation, dropout, 'student')
        self.privileged = inputs.training_inputs(PRIVILEGED) if teacher else ()
        if teacher and not self.privileged:
            self.training_input(PRIVILEGED, 'privileged_distillation')  # raises, naming the spec kind
        if not teacher:
            return
        ids = tuple(dataclasses.replace(f, table=f'privileged_{f.table}') for f in self.privileged if f.table)
        self.privileged_embedding = FieldEmbedding(dataclasses.replace(inputs, fields=ids),
                                                   name='privileged_embedding') if ids else None
        self.teacher = self.tower(hidden_units, activation, dropout, TEACHER)
        self.set_tasks(DistillationTask(inputs.label, TEACHER, distillation_weight=distillation_weight,
                                        ramp_steps=ramp_steps, auc_thresholds=self.auc_thresholds, name='click'),
                       BinaryTask(inputs.label, head=TEACHER, served=False, auc_thresholds=self.auc_thresholds))

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        outputs[LOGITS] = tf.squeeze(self.student(shared, training=training), axis=-1)
        if self.hparams['teacher'] and all(self.present(features, f) for f in self.privileged):
            embedded = self.privileged_embedding(features) if self.privileged_embedding is not None else {}
            parts = [tf.cast(features[f.name], tf.float32)[:, tf.newaxis] if f.kind == NUMERIC else embedded[f.name]
                     for f in self.privileged]
            teacher_input = tf.concat([shared] + parts, axis=-1)
            outputs[f'{TEACHER}_logits'] = tf.squeeze(self.teacher(teacher_input, training=training), axis=-1)
            outputs[TEACHER] = tf.sigmoid(outputs[f'{TEACHER}_logits'])
        return self.with_heads(outputs)

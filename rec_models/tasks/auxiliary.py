"""The auxiliary loss: a loss an auxiliary network of the model computes itself (DIEN's and DMIN's next-behaviour
loss, DMR's negative-sampling loss, DeepMCP's skip-gram loss), read from the outputs and weighted."""

from typing import Optional

import tensorflow as tf

from rec_models.tasks.base import Task

AUX_LOSS = 'aux_loss'


class AuxiliaryLoss(Task):
    """L_aux, the scalar the model puts in its outputs under ``key`` (in training only, as a rule), weighted by
    α = ``weight`` in the total loss (L = L_target + α L_aux) and reported as the metric ``key``. Inactive, and
    not reported, on calls whose outputs do not carry it (evaluation).

    Args:
        key: the outputs key of the loss, also the metric's name.
        weight: α (0: off; the model then need not compute the loss).
    """

    def __init__(self, key: str = AUX_LOSS, weight: float = 1.0, name: Optional[str] = None):
        super().__init__(weight=weight, name=name or key)
        self.key = key
        self.tracker = tf.keras.metrics.Mean(name=key)

    def required_outputs(self):
        return (self.key,)

    def compute_loss(self, labels, outputs, features, training=False):
        return tf.reshape(outputs[self.key], [])

    def update_metrics(self, labels, outputs, loss):
        self.tracker.update_state(loss)

    @property
    def task_metrics(self):
        return [self.tracker]

"""The binary task: a head's log loss against a label, and its AUC (the click task of every ranking model)."""

from typing import Optional

import tensorflow as tf

from rec_models.tasks.base import LOGITS, PROBABILITIES, Task, label_of, masked_mean

EPSILON = 1e-7


def logits_key(probabilities: str) -> str:
    """The outputs key of the logits behind the probabilities under ``probabilities``: ``logits`` for the primary
    ``probabilities``, ``<head>_logits`` for a named head."""
    return LOGITS if probabilities == PROBABILITIES else f'{probabilities}_logits'


def binary_log_loss(label, logits=None, probabilities=None):
    """Per-row −[y log p + (1 − y) log(1 − p)]: from the logits when given (stable), else from p clipped to
    [ε, 1 − ε]."""
    if logits is not None:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=logits)
    p = tf.clip_by_value(probabilities, EPSILON, 1.0 - EPSILON)
    return -(label * tf.math.log(p) + (1.0 - label) * tf.math.log(1.0 - p))


class BinaryTask(Task):
    """Log loss of a head's probability p = σ(z) against a binary label, and the head's AUC:

        L = −1/|R| Σ_{i∈R} [y_i log p_i + (1 − y_i) log(1 − p_i)]

    over the rows R whose ``condition`` label is 1 (every row without one: a CVR model trained on clicked
    impressions only has ``condition`` = the click label).

    Args:
        label: the label column.
        head: the head (``''``: the single head, read from ``logits`` / ``probabilities``).
        probabilities: outputs key of p (default: the head's name, or ``probabilities``).
        from_logits: read z from ``logits_key(probabilities)`` (stable); False reads p itself (for probabilities that
            are not a sigmoid, e.g. ESM2's CVR).
        condition: a label column restricting the rows of the loss and the metrics.
        weight: the loss weight (0: tracked only, e.g. ESMM's pCVR, which no loss supervises directly).
        served: whether the head is served; a served head whose p is not in the outputs gets σ(z) added.
        auc_thresholds: ``num_thresholds`` of the streaming AUC.
        track_loss: also report the task's loss as ``<head>_loss`` (default: for a named head).
    """

    def __init__(self, label: str, head: str = '', probabilities: Optional[str] = None, from_logits: bool = True,
                 condition: Optional[str] = None, weight: float = 1.0, served: bool = True,
                 auc_thresholds: int = 1000, track_loss: Optional[bool] = None, name: Optional[str] = None):
        super().__init__(head=head, weight=weight, name=name)
        self.label = label
        self.probabilities = probabilities or head or PROBABILITIES
        self.logits = logits_key(self.probabilities) if from_logits else None
        self.condition = condition
        self.served = served
        self.auc = tf.keras.metrics.AUC(num_thresholds=auc_thresholds, name=self.metric_name('auc'))
        track_loss = bool(head) if track_loss is None else track_loss
        self.loss_tracker = tf.keras.metrics.Mean(name=self.metric_name('loss')) if track_loss else None

    def required_outputs(self):
        return (self.logits,) if self.logits else (self.probabilities,)

    def add_outputs(self, outputs):
        if self.served and self.logits in outputs and self.probabilities not in outputs:
            outputs[self.probabilities] = tf.sigmoid(outputs[self.logits])
        return outputs

    def mask(self, labels):
        """The condition label as a float ``[B]`` mask, None without a condition."""
        return None if self.condition is None else label_of(labels, self.condition)

    def compute_loss(self, labels, outputs, features, training=False):
        label = label_of(labels, self.label)
        if self.logits:
            per_row = binary_log_loss(label, logits=tf.reshape(outputs[self.logits], [-1]))
        else:
            per_row = binary_log_loss(label, probabilities=tf.reshape(outputs[self.probabilities], [-1]))
        return masked_mean(per_row, self.mask(labels))

    def predictions(self, outputs):
        """p ``[B]`` of the batch."""
        if self.probabilities in outputs:
            return tf.reshape(outputs[self.probabilities], [-1])
        return tf.sigmoid(tf.reshape(outputs[self.logits], [-1]))

    def update_metrics(self, labels, outputs, loss):
        self.auc.update_state(label_of(labels, self.label), self.predictions(outputs), sample_weight=self.mask(labels))
        if self.loss_tracker is not None:
            self.loss_tracker.update_state(loss)

    @property
    def task_metrics(self):
        return [self.auc] + ([self.loss_tracker] if self.loss_tracker is not None else [])

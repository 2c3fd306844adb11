"""The product task: a head that is the product of other heads' probabilities, trained on its own label (ESMM's
pCTCVR = pCTR · pCVR, ESM2's pCTAVR and pCTCVR, PAL's p(seen) · p(click | seen))."""

from typing import Optional, Sequence

import tensorflow as tf

from rec_models.tasks.base import Task, label_of, masked_mean
from rec_models.tasks.binary import logits_key


def log1mexp(x):
    """log(1 − exp(x)) for x < 0, stable at both ends (Mächler, 2012): log(−expm1(x)) near 0, log1p(−exp(x)) below
    −log 2."""
    x = tf.minimum(x, -1e-7)
    return tf.where(x > -0.6931472, tf.math.log(-tf.math.expm1(x)), tf.math.log1p(-tf.exp(x)))


class ProductTask(Task):
    """p = Π_k p_k, the product of the probabilities under ``factors``, with the log loss against ``label``:

        L = −1/N Σ_i [y_i log p_i + (1 − y_i) log(1 − p_i)],   log p = Σ_k log p_k

    where log p_k = −softplus(−z_k) when the factor's logits are in the outputs (``<factor>_logits``, or ``logits``
    for ``probabilities``) and log max(p_k, ε) otherwise, and log(1 − p) = log1mexp(log p): no product underflows.
    Its metric is the product's AUC.

    Args:
        label: the label column of the product (ESMM: click ∧ conversion, over all impressions).
        factors: outputs keys of the factors' probabilities.
        head: the head; ``''`` makes it the primary, unprefixed task (PAL's).
        served: whether the product is served under ``head`` (PAL serves one factor instead: False).
        weight, auc_thresholds, track_loss, name: as :class:`~rec_models.tasks.BinaryTask`.
    """

    def __init__(self, label: str, factors: Sequence[str], head: str = '', served: bool = True, weight: float = 1.0,
                 auc_thresholds: int = 1000, track_loss: Optional[bool] = None, name: Optional[str] = None):
        super().__init__(head=head, weight=weight, name=name)
        if len(factors) < 2:
            raise ValueError(f'task {self.name!r}: a product needs two or more factors, got {list(factors)}')
        self.label = label
        self.factors = tuple(factors)
        self.served = served and bool(head)
        self.auc = tf.keras.metrics.AUC(num_thresholds=auc_thresholds, name=self.metric_name('auc'))
        track_loss = bool(head) if track_loss is None else track_loss
        self.loss_tracker = tf.keras.metrics.Mean(name=self.metric_name('loss')) if track_loss else None

    def required_outputs(self):
        return self.factors

    def log_probability(self, outputs):
        """log p ``[B]``."""
        total = 0.0
        for factor in self.factors:
            logits = logits_key(factor)
            if logits in outputs:
                total += -tf.nn.softplus(-tf.reshape(outputs[logits], [-1]))
            else:
                total += tf.math.log(tf.maximum(tf.reshape(outputs[factor], [-1]), 1e-12))
        return total

    def product(self, outputs):
        """p = Π_k p_k ``[B]``."""
        result = tf.reshape(outputs[self.factors[0]], [-1])
        for factor in self.factors[1:]:
            result *= tf.reshape(outputs[factor], [-1])
        return result

    def add_outputs(self, outputs):
        if self.served and self.active(outputs) and self.head not in outputs:
            outputs[self.head] = self.product(outputs)
        return outputs

    def compute_loss(self, labels, outputs, features, training=False):
        label = label_of(labels, self.label)
        log_p = self.log_probability(outputs)
        return masked_mean(-(label * log_p + (1.0 - label) * log1mexp(log_p)), None)

    def update_metrics(self, labels, outputs, loss):
        self.auc.update_state(label_of(labels, self.label), self.product(outputs))
        if self.loss_tracker is not None:
            self.loss_tracker.update_state(loss)

    @property
    def task_metrics(self):
        return [self.auc] + ([self.loss_tracker] if self.loss_tracker is not None else [])

"""The covariance penalty: the squared mini-batch covariance of two outputs, which the adversarial bias net's main
update minimises so that the learned representation carries no position information (Moore et al., 2018)."""

from typing import Optional

import tensorflow as tf

from rec_models.tasks.base import Task


class CovariancePenalty(Task):
    """L = Cov_B(a, b)², Cov_B(a, b) = 1/(n − 1) Σ_i (a_i − ā)(b_i − b̄) over the n rows of the mini-batch, with a and
    b the outputs under ``first`` and ``second``; reported as ``<name>``.

    Args:
        first, second: outputs keys of the two ``[B]`` quantities.
        weight: the penalty's weight λ.
    """

    def __init__(self, first: str, second: str, weight: float = 1.0, name: Optional[str] = 'decorrelation'):
        super().__init__(weight=weight, name=name)
        self.first = first
        self.second = second
        self.tracker = tf.keras.metrics.Mean(name=self.name)

    def required_outputs(self):
        return (self.first, self.second)

    def compute_loss(self, labels, outputs, features, training=False):
        return tf.square(covariance(tf.reshape(outputs[self.first], [-1]), tf.reshape(outputs[self.second], [-1])))

    def update_metrics(self, labels, outputs, loss):
        self.tracker.update_state(loss)

    @property
    def task_metrics(self):
        return [self.tracker]


def covariance(a, b):
    """The unbiased sample covariance 1/(n − 1) Σ (a_i − ā)(b_i − b̄) of two ``[n]`` vectors (0 for n < 2)."""
    n = tf.cast(tf.size(a), tf.float32)
    centred = (a - tf.reduce_mean(a)) * (b - tf.reduce_mean(b))
    return tf.reduce_sum(centred) / tf.maximum(n - 1.0, 1.0)

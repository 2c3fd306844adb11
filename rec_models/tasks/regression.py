"""The regression task: the squared error of a prediction against a label or against another output (the MMoE
paper's synthetic regression tasks; the adversarial bias net's estimate of the position CTR)."""

from typing import Optional

import tensorflow as tf

from rec_models.tasks.base import Task, label_of


class RegressionTask(Task):
    """L = 1/N Σ_i (y_i − ŷ_i)², with ŷ the outputs' ``predictions`` and y the ``label`` column or the outputs'
    ``target`` (a quantity the model derives, e.g. a position's CTR); reported as ``<head>_mse``.

    Args:
        head: the head; its name is the default ``predictions`` key.
        label: the label column of y (exactly one of ``label`` and ``target``).
        target: the outputs key of y (no gradient flows into it).
        predictions: the outputs key of ŷ.
        served: whether ŷ is a served head.
        weight, name: as every task.
    """

    def __init__(self, head: str, label: Optional[str] = None, target: Optional[str] = None,
                 predictions: Optional[str] = None, served: bool = True, weight: float = 1.0,
                 name: Optional[str] = None):
        super().__init__(head=head, weight=weight, name=name)
        if (label is None) == (target is None):
            raise ValueError(f'task {self.name!r}: give exactly one of label and target')
        self.label = label
        self.target = target
        self.predictions = predictions or head
        self.served = served
        self.mse = tf.keras.metrics.Mean(name=self.metric_name('mse'))

    def required_outputs(self):
        return (self.predictions,) + ((self.target,) if self.target else ())

    def targets(self, labels, outputs):
        if self.label is not None:
            return label_of(labels, self.label)
        return tf.stop_gradient(tf.reshape(outputs[self.target], [-1]))

    def compute_loss(self, labels, outputs, features, training=False):
        error = self.targets(labels, outputs) - tf.reshape(outputs[self.predictions], [-1])
        return tf.reduce_mean(tf.square(error))

    def update_metrics(self, labels, outputs, loss):
        self.mse.update_state(loss)

    @property
    def task_metrics(self):
        return [self.mse]

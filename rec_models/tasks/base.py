"""The task base class and the heads a model serves.

A model is towers plus tasks (as in TensorFlow Recommenders): the towers compute the outputs dict, and each
:class:`Task` owns one loss, the metrics that watch it and the named outputs it serves. The model's base class
(:class:`rec_models.base.RankingModel`) sums the tasks' weighted losses, updates their metrics and lets them add
their outputs; no model writes loss or metrics plumbing of its own.

A task reads the outputs it needs by key. It is *active* on a call when those outputs are there: an auxiliary loss
whose outputs the model computes in training only is neither computed nor reported in evaluation.

Metric names are prefixed by the task's head (``ctr_auc``, ``cvr_auc``); the one task of a single-head model has
the empty head, so its metrics keep their plain names (``auc``).
"""

import dataclasses
from typing import Dict, Optional, Sequence

import tensorflow as tf

LOGITS = 'logits'
PROBABILITIES = 'probabilities'


@dataclasses.dataclass(frozen=True)
class Head:
    """One served output of a model, evaluated against a label.

    Attributes:
        name: the output's name in the serving signatures (``ctr``, ``cvr``, …); ``''`` for the one head of a
            single-head model, served as ``probabilities`` only.
        role: the label role it is evaluated against (``click``, ``conversion``, …; the spec's ``label_roles``).
        condition: a label role whose positive rows get their own evaluation as well (``click`` for pCVR: the
            conversion rate given a click).
        counterfactual: the role of ground-truth labels the head is also evaluated against when the data has them,
            over every impression: ``relevance`` (the click had the impression been examined) for a click head,
            ``conversion_if_clicked`` for pCVR. Evaluation only: no model trains on them.
    """
    name: str = ''
    role: str = 'click'
    condition: Optional[str] = None
    counterfactual: Optional[str] = 'relevance'

    @property
    def output(self) -> str:
        """The outputs-dict key of the head's probabilities."""
        return self.name or PROBABILITIES


class Task(tf.keras.layers.Layer):
    """One loss, its metrics and its served outputs.

    Args:
        head: the head the task trains (metric names are prefixed by it); ``''`` for a single-head model's task.
        weight: the loss weight in the model's total loss (0: tracked, not trained).
        name: the task's name (default: the head, or the class name), unique within a model; update schedules
            name tasks by it.
    """

    def __init__(self, head: str = '', weight: float = 1.0, name: Optional[str] = None, **kwargs):
        super().__init__(name=name or head or type(self).__name__.lower(), trainable=False, **kwargs)
        if weight < 0:
            raise ValueError(f'task {self.name!r}: the loss weight must be ≥ 0, got {weight}')
        self.head = head
        self.weight = float(weight)

    def metric_name(self, metric: str) -> str:
        """``<head>_<metric>``, or ``metric`` for the empty head."""
        return f'{self.head}_{metric}' if self.head else metric

    def required_outputs(self) -> Sequence[str]:
        """The outputs-dict keys the task reads; it is active only when all are there."""
        return ()

    def active(self, outputs: Dict[str, tf.Tensor]) -> bool:
        return all(key in outputs for key in self.required_outputs())

    def add_outputs(self, outputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """The outputs with what this task serves added (e.g. a product of probabilities); default: unchanged."""
        return outputs

    def compute_loss(self, labels, outputs, features, training: bool = False) -> tf.Tensor:
        """The task's unweighted loss (a scalar) on a batch."""
        raise NotImplementedError

    def update_metrics(self, labels, outputs, loss: tf.Tensor) -> None:
        """Updates the task's metrics on a batch; ``loss`` is its unweighted loss from :meth:`compute_loss`."""

    @property
    def task_metrics(self):
        """The task's metric objects, in report order."""
        return []

    def reported_metrics(self, outputs: Dict[str, tf.Tensor]):
        """The metrics a batch with these outputs reports (default: all; a metric the call cannot update, such as a
        retrieval model's full-ranking recall in a training step, is left out of that step's logs)."""
        del outputs
        return self.task_metrics


def label_of(labels, name: str) -> tf.Tensor:
    """Label ``name`` of the batch as float32 ``[B]``; KeyError naming the labels there are."""
    if name not in labels:
        raise KeyError(f'no label {name!r} in the batch (labels: {sorted(labels)})')
    return tf.reshape(tf.cast(labels[name], tf.float32), [-1])


def masked_mean(values: tf.Tensor, mask: Optional[tf.Tensor]) -> tf.Tensor:
    """The mean of ``values`` over the rows where ``mask`` is 1 (all rows without a mask; 0 when none)."""
    if mask is None:
        return tf.reduce_mean(values)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

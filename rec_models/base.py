"""The base class of the ranking models: a features dict in, an outputs dict out; towers plus tasks.

A :class:`RankingModel` is built from a :class:`ModelInputs` and reads only the features it lists. Its
``call(features, training=False)`` returns a dict with at least

* ``'logits'``: float32 ``[B]``, the primary head's logit z;
* ``'probabilities'``: float32 ``[B]``, the primary head's probability p = sigmoid(z), what ``serving_default``,
  ``classification`` and ``regression`` serve and what early stopping and blessing judge by default;

every other served head by name (``ctr``, ``cvr``, ``ctcvr``, …: the class's :attr:`RankingModel.HEADS`), and
whatever else the model exposes (attention weights, gates).

**Towers plus tasks.** The towers are the model's layers; what it is trained on is a list of tasks
(:mod:`rec_models.tasks`, declared with :meth:`RankingModel.set_tasks`; by default one
:class:`~rec_models.tasks.BinaryTask` on the primary label, the log loss of the DIN paper, §4.2):

    L = Σ_k w_k · L_k  +  Σ regularisers (``self.losses``)

The base class computes the tasks' losses, updates their metrics (named by head: ``ctr_auc``; a single-head
model's keep their plain names, ``auc``, ``loss``) and lets them add their served outputs; no model overrides
the loss or the metrics. Tasks whose outputs a call does not produce (auxiliary losses outside training) are skipped.

**Update schedules.** :meth:`RankingModel.update_steps` lists the optimisation steps of one training batch: each
step minimises the losses of some tasks over some variables with its own optimizer (a copy of the compiled one).
The default is one step over everything; the adversarial bias net declares two (the bias net on its regression
loss, then the rest with the bias net frozen).

**Training-only inputs.** Positions and privileged features reach the model in training and evaluation through
``ModelInputs.training_only``; they are never in the serving signature (:func:`serving_signature`).

``train_step``/``test_step`` take ``(features, labels)``, where labels is a dict ``{label name: [B]}`` or a bare
tensor for the primary label, or a features dict that carries the labels under their names.
"""

import dataclasses
import os
from typing import Callable, List, Optional, Sequence, Tuple

import tensorflow as tf

from feature_spec.model_inputs import NUMERIC, SEQUENCE, ModelInputs
from rec_models.layers.embedding import pop_inputs_and_frequencies
from rec_models.tasks import LOGITS, PROBABILITIES, BinaryTask, Head, Task


def serving_signature(inputs: ModelInputs) -> dict:
    """``{name: tf.TensorSpec}`` of every feature a model built from ``inputs`` reads, the length included."""
    specs = {}
    for field in inputs.fields + tuple(f for group in inputs.auxiliary for f in group.fields):
        if field.kind == SEQUENCE:
            specs[field.name] = tf.TensorSpec([None, field.max_length], tf.int64, name=field.name)
        elif field.kind == NUMERIC:
            specs[field.name] = tf.TensorSpec([None], tf.float32, name=field.name)
        else:
            specs[field.name] = tf.TensorSpec([None], tf.int64, name=field.name)
    if inputs.sequence_length is not None:
        specs[inputs.sequence_length] = tf.TensorSpec([None], tf.int64, name=inputs.sequence_length)
    if inputs.sessions is not None:
        sessions = inputs.sessions
        for field in sessions.fields:
            specs[field.name] = tf.TensorSpec([None, sessions.max_sessions * field.max_length], tf.int64,
                                              name=field.name)
        specs[sessions.length_feature] = tf.TensorSpec([None, sessions.max_sessions], tf.int64,
                                                       name=sessions.length_feature)
    for group in inputs.auxiliary:
        if any(f.kind == SEQUENCE for f in group.fields):
            specs[group.length_feature] = tf.TensorSpec([None], tf.int64, name=group.length_feature)
    return specs


def click_outputs(logits, **extra) -> dict:
    """The outputs dict of a one-head model: logits, their sigmoid, and any extra outputs."""
    return {LOGITS: logits, PROBABILITIES: tf.sigmoid(logits), **extra}


EXPORTED_VARIABLES = 'model_variables'   # where an export keeps a model's variables (tfx_pipeline.export)


def variable_keys(model: tf.keras.Model) -> dict:
    """``{key: variable}`` of a model's variables, the key its name below the model's own scope (``fields/item_id/
    embeddings``): how an exported model keeps them, so that another model can read them back by name (FNN's warm
    start from an FM) whatever the two models are called."""
    keys = {}
    for variable in model.variables:
        name = variable.name.split(':')[0]
        key = name.split('/', 1)[1] if name.startswith(model.name + '/') else name
        while key in keys:
            key += '_'
        keys[key] = variable
    return keys


def read_exported_variables(export_dir: str) -> dict:
    """``{key: value}`` of the model variables an export holds (:func:`variable_keys`); ValueError when the directory
    holds no exported variables."""
    prefix = os.path.join(export_dir, 'variables', 'variables')
    if not tf.io.gfile.exists(prefix + '.index'):
        raise ValueError(f'{export_dir!r} is not an exported model (no variables/variables.index in it)')
    reader = tf.train.load_checkpoint(prefix)
    values = {}
    for name in reader.get_variable_to_shape_map():
        head, _, rest = name.partition('/')
        if head == EXPORTED_VARIABLES and rest.endswith('/.ATTRIBUTES/VARIABLE_VALUE'):
            values[_unescape(rest[:-len('/.ATTRIBUTES/VARIABLE_VALUE')])] = reader.get_tensor(name)
    return values


def _unescape(name: str) -> str:
    """A checkpoint key's object name as it was (``.S`` is ``/``, ``..`` is ``.``), read left to right."""
    out, i = [], 0
    while i < len(name):
        pair = name[i:i + 2]
        if pair in ('.S', '..'):
            out.append('/' if pair == '.S' else '.')
            i += 2
        else:
            out.append(name[i])
            i += 1
    return ''.join(out)


@dataclasses.dataclass(frozen=True)
class UpdateStep:
    """One optimisation step of a training batch: minimise the losses of ``tasks`` (their names; None: every task)
    over ``variables(model)`` (None: every trainable variable) with the optimizer of step ``name``."""
    name: str
    variables: Optional[Callable[['RankingModel'], List[tf.Variable]]] = None
    tasks: Optional[Tuple[str, ...]] = None


class RankingModel(tf.keras.Model):
    """Base class: subclasses build their layers (and, beyond one click head, their tasks) in ``__init__`` and
    implement ``call``.

    Args:
        inputs: the model inputs (kept as ``self.model_inputs``; ``inputs`` is a Keras attribute).
        frequencies: ``{table: training-data id counts}`` for the mini-batch-aware L2; subclasses hand them to
            their :class:`~rec_models.layers.FieldEmbedding`, the base class keeps only the table names.
        auc_thresholds: ``num_thresholds`` of the streaming AUC metrics.
    """

    # The heads the model serves, the primary first (its probabilities are also served as ``probabilities``);
    # a multi-head model lists them by name, each with the label role it is evaluated against.
    HEADS: Tuple[Head, ...] = (Head(),)
    # What the model does: 'ranking' (scores given candidates) or 'retrieval' (finds them; rec_models.retrieval).
    KIND = 'ranking'

    def __init__(self, inputs: ModelInputs, frequencies=None, auc_thresholds=1000, **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.frequency_tables = tuple(sorted(frequencies or {}))
        self.auc_thresholds = auc_thresholds
        self.hparams = {}
        self.loss_tracker = tf.keras.metrics.Mean(name='loss')
        # the loss term the layers add (L2 and other regularisers): reported when there is one
        self.regularization_tracker = tf.keras.metrics.Mean(name='regularization_loss')
        self.tasks = [BinaryTask(inputs.label, auc_thresholds=auc_thresholds, name='click')]
        self._step_optimizers = {}

    @classmethod
    def served_heads(cls, hparams=None) -> Tuple[Head, ...]:
        """The heads a model built with ``hparams`` serves (default: :attr:`HEADS`), the primary first."""
        del hparams
        return cls.HEADS

    @property
    def primary_metric(self) -> str:
        """The name of the primary head's AUC metric: ``auc``, or ``<head>_auc`` for a named primary head."""
        head = self.served_heads(self.hparams)[0].name
        return f'{head}_auc' if head else 'auc'

    def set_tasks(self, *tasks: Task) -> None:
        """Declares the model's tasks (replacing the default click task); names must be distinct."""
        names = [task.name for task in tasks]
        if not tasks or len(set(names)) != len(names):
            raise ValueError(f'{type(self).__name__}: tasks need distinct names, got {names}')
        self.tasks = list(tasks)

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f'{type(self).__name__} has no task {name!r}; it has {[t.name for t in self.tasks]}')

    def with_heads(self, outputs: dict) -> dict:
        """The outputs with every task's served outputs added and ``probabilities``/``logits`` set to the primary
        head's; every multi-head model's ``call`` ends with it."""
        for task in self.tasks:
            outputs = task.add_outputs(outputs)
        primary = self.served_heads(self.hparams)[0].name
        if primary:
            outputs[PROBABILITIES] = outputs[primary]
            if f'{primary}_logits' in outputs:
                outputs[LOGITS] = outputs[f'{primary}_logits']
        return outputs

    def update_steps(self) -> Sequence[UpdateStep]:
        """The optimisation steps of one training batch; default: one step on every task over every variable."""
        return (UpdateStep('all'),)

    def compile(self, optimizer='rmsprop', **kwargs):
        """Takes the optimizer (and Keras' execution options) only: the tasks own the losses and metrics. Each
        further update step gets its own optimizer, a copy of this one's configuration."""
        for owned in ('loss', 'metrics', 'loss_weights', 'weighted_metrics'):
            if kwargs.get(owned) is not None:
                raise ValueError(f'{type(self).__name__} computes its own {owned}: declare tasks (set_tasks) instead '
                                 f'of passing {owned} to compile')
        super().compile(optimizer=optimizer, **kwargs)
        steps = self.update_steps()
        self._step_optimizers = {steps[0].name: self.optimizer}
        for step in steps[1:]:
            self._step_optimizers[step.name] = type(self.optimizer).from_config(self.optimizer.get_config())

    def rank(self, context, candidates):
        """One request's candidates scored at once: ``context`` holds the features of one user and request
        (``[1, ...]``), ``candidates`` the item features of N candidates (``[N, ...]``); returns ``call``'s outputs
        for the N joined examples.

        This default repeats the context for each candidate, so it equals ``call`` on the joined examples exactly.
        A model whose user part is costly overrides it to compute that part once per request (the model split of
        DUPN, Ni et al., KDD 2018, §4.2).
        """
        count = tf.shape(next(iter(candidates.values())))[0]
        repeated = {name: tf.repeat(value, count, axis=0) for name, value in context.items()}
        return self({**repeated, **candidates}, training=False)

    @classmethod
    def check_hparams(cls, hparams):
        """Rejects hyper-parameter values that cannot work (ValueError naming the hyper-parameter); called by
        :func:`rec_models.registry.validate`, before any pipeline work. Models with such values override it."""

    def sequence_mask(self, features, field):
        """``[B, L]`` bool: step j of sequence ``field`` is valid iff j < the example's length."""
        return tf.sequence_mask(features[self.model_inputs.sequence_length], field.max_length)

    def split_data(self, data):
        """``(features, labels dict)`` from ``(features, labels)`` or from a features dict holding the labels."""
        if isinstance(data, (tuple, list)):
            features, labels = data
            if not isinstance(labels, dict):
                labels = {self.model_inputs.label: labels}
            return features, labels
        return data, {name: data[name] for name in self.model_inputs.labels if name in data}

    def task_losses(self, labels, outputs, features, training=False, tasks=None):
        """``{task name: unweighted loss}`` of the active tasks (of those named in ``tasks``, when given)."""
        return {task.name: task.compute_loss(labels, outputs, features, training=training)
                for task in self.tasks if (tasks is None or task.name in tasks) and task.weight and
                task.active(outputs)}

    def weighted_loss(self, task_losses) -> tf.Tensor:
        """Σ_k w_k · L_k of ``{task name: loss}``."""
        weights = {task.name: task.weight for task in self.tasks}
        terms = [weights[name] * loss for name, loss in task_losses.items()]
        return tf.add_n(terms) if terms else tf.constant(0.0)

    def compute_loss(self, labels, outputs, features, training=False, tasks=None):
        """Σ_k w_k · L_k over the active tasks (of ``tasks``, when given)."""
        return self.weighted_loss(self.task_losses(labels, outputs, features, training, tasks))

    def total_loss(self, labels, outputs, features, training=False, tasks=None):
        """:meth:`compute_loss` plus the losses the layers added in the last call (regularisers)."""
        loss = self.compute_loss(labels, outputs, features, training, tasks)
        return self.with_regularisers(loss)

    def with_regularisers(self, loss):
        """``loss`` plus the losses the layers added in the last call (regularisers)."""
        return loss + tf.add_n(self.losses) if self.losses else loss

    @property
    def metrics(self):
        return [self.loss_tracker, self.regularization_tracker] + [metric for task in self.tasks
                                                                   for metric in task.task_metrics]

    def update_metrics(self, labels, outputs, loss, task_losses=None, features=None):
        """Updates the loss and every active task's metrics (with its loss from ``task_losses``, computed here when
        missing); returns the logs dict: the loss and the active tasks' metrics."""
        self.loss_tracker.update_state(loss)
        logs = {self.loss_tracker.name: self.loss_tracker.result()}
        if self.losses:   # the regularisers' term of the total loss, beside the tasks' own losses
            self.regularization_tracker.update_state(tf.add_n(self.losses))
            logs[self.regularization_tracker.name] = self.regularization_tracker.result()
        task_losses = task_losses or {}
        for task in self.tasks:
            if not task.active(outputs):
                continue
            task_loss = task_losses.get(task.name)
            if task_loss is None:
                task_loss = task.compute_loss(labels, outputs, features)
            task.update_metrics(labels, outputs, task_loss)
            logs.update({metric.name: metric.result() for metric in task.reported_metrics(outputs)})
        return logs

    def _optimizer_of(self, step: UpdateStep):
        """The optimizer of ``step``; a later step's follows the first's learning rate (which the schedule sets)."""
        optimizer = self._step_optimizers.get(step.name, self.optimizer)
        if optimizer is not self.optimizer and isinstance(getattr(optimizer, '_learning_rate', None), tf.Variable):
            optimizer.learning_rate = self.optimizer.learning_rate
        return optimizer

    # The steps and the models' calls use Python control flow on Python values only. Autograph would otherwise
    # convert all of tf_keras (which, unlike ``keras``, is not on its do-not-convert list) at each first trace.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        features, labels = self.split_data(data)
        task_losses = {}
        # Under a multi-worker strategy each worker's loss is its part of the global batch's mean, and the optimizer
        # sums the workers' gradients: each minimises loss / workers (tfx_pipeline.distribute).
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for step in self.update_steps():
            with tf.GradientTape() as tape:
                outputs = self(features, training=True)
                losses = self.task_losses(labels, outputs, features, training=True, tasks=step.tasks)
                loss = self.with_regularisers(self.weighted_loss(losses))
                minimised = loss / replicas if replicas > 1 else loss
            variables = self.trainable_variables if step.variables is None else step.variables(self)
            self._optimizer_of(step).minimize(minimised, variables, tape=tape)
            task_losses.update(losses)
        return self.update_metrics(labels, outputs, loss, task_losses, features)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        features, labels = self.split_data(data)
        outputs = self(features, training=False)
        losses = self.task_losses(labels, outputs, features)
        return self.update_metrics(labels, outputs, self.with_regularisers(self.weighted_loss(losses)), losses,
                                   features)

    def get_config(self):
        """Inputs, hyper-parameters and the names of the tables with frequencies (their values are weights)."""
        return {'inputs': self.model_inputs.to_dict(), 'frequency_tables': list(self.frequency_tables),
                'auc_thresholds': self.auc_thresholds, 'name': self.name, **self.hparams}

    @classmethod
    def from_config(cls, config):
        """Rebuilds the model with placeholder frequencies (ones), to be overwritten by loading weights."""
        config = dict(config)
        inputs, frequencies = pop_inputs_and_frequencies(config)
        return cls(inputs, frequencies=frequencies or None, **config)

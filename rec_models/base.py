"""The base class of the ranking models: a features dict in, an outputs dict out.

A :class:`RankingModel` is built from a :class:`ModelInputs` and reads only the features it lists. Its
``call(features, training=False)`` returns a dict with at least

* ``'logits'``: float32 ``[B]``, the click logit z;
* ``'probabilities'``: float32 ``[B]``, p = sigmoid(z);

and whatever else the model wants to expose (attention weights, per-head outputs).

Training minimises the mean log loss of the DIN paper (§4.2), on the primary label y:

    L = −1/N Σ_{(x,y)} [y log p(x) + (1 − y) log(1 − p(x))]  +  Σ regularisers (``self.losses``)

``train_step``/``test_step`` take ``(features, labels)``, where labels is a dict ``{label name: [B]}`` or a bare
tensor for the primary label, or a features dict that carries the labels under their names. The hooks, for
models that need more than one click head:

* ``compute_loss(labels, outputs, features)``: the data loss (several heads → several terms; auxiliary losses
  such as DIEN's also go here, or through ``add_loss`` from a layer).
* ``update_metrics(labels, outputs, loss)`` and ``metrics``: what is tracked and reported.
* ``train_step``: override whole for alternating (adversarial) updates.
"""

import tensorflow as tf

from feature_spec.model_inputs import NUMERIC, SEQUENCE, ModelInputs
from rec_models.layers.embedding import pop_inputs_and_frequencies


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
    return {'logits': logits, 'probabilities': tf.sigmoid(logits), **extra}


class RankingModel(tf.keras.Model):
    """Base class: subclasses build their layers in ``__init__`` and implement ``call``.

    Args:
        inputs: the model inputs (kept as ``self.model_inputs``; ``inputs`` is a Keras attribute).
        frequencies: ``{table: training-data id counts}`` for the mini-batch-aware L2; subclasses hand them to
            their :class:`~rec_models.layers.FieldEmbedding`, the base class keeps only the table names.
        auc_thresholds: ``num_thresholds`` of the streaming AUC metric.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, auc_thresholds=1000, **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.frequency_tables = tuple(sorted(frequencies or {}))
        self.auc_thresholds = auc_thresholds
        self.hparams = {}
        self.loss_tracker = tf.keras.metrics.Mean(name='loss')
        self.auc_metric = tf.keras.metrics.AUC(num_thresholds=auc_thresholds, name='auc')

    def compile(self, optimizer='rmsprop', **kwargs):
        """Takes the optimizer (and Keras' execution options) only: the model owns its loss and metrics."""
        for owned in ('loss', 'metrics', 'loss_weights', 'weighted_metrics'):
            if kwargs.get(owned) is not None:
                raise ValueError(f'{type(self).__name__} computes its own {owned}: override compute_loss, '
                                 f'update_metrics and metrics instead of passing {owned} to compile')
        super().compile(optimizer=optimizer, **kwargs)

    def rank(self, context, candidates):
        """One request's candidates scored at once: ``context`` holds the features of one user and request
        (``[1, ...]``), ``candidates`` the item features of N candidates (``[N, ...]``); returns ``call``'s outputs
        for the N joined examples.

        This default repeats the context for each candidate, so it equals ``call`` on the joined examples exactly.
        A model whose user part is costly overrides it to compute that part once per request (the model split of
        DUPN, seed ``001`` §4.2).
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

    def compute_loss(self, labels, outputs, features):
        """Mean binary cross-entropy of the primary label against ``outputs['logits']``."""
        del features  # the default loss needs only labels and outputs
        label = tf.reshape(tf.cast(labels[self.model_inputs.label], tf.float32), [-1])
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=label, logits=outputs['logits']))

    def total_loss(self, labels, outputs, features):
        """``compute_loss`` plus the losses the layers added in the last call (regularisers)."""
        loss = self.compute_loss(labels, outputs, features)
        return loss + tf.add_n(self.losses) if self.losses else loss

    @property
    def metrics(self):
        return [self.loss_tracker, self.auc_metric]

    def update_metrics(self, labels, outputs, loss):
        """Updates loss and AUC (primary label vs. ``outputs['probabilities']``); returns the logs dict."""
        self.loss_tracker.update_state(loss)
        label = tf.reshape(tf.cast(labels[self.model_inputs.label], tf.float32), [-1])
        self.auc_metric.update_state(label, outputs['probabilities'])
        return {metric.name: metric.result() for metric in self.metrics}

    # The steps and the models' calls use Python control flow on Python values only. Autograph would otherwise
    # convert all of tf_keras (which, unlike ``keras``, is not on its do-not-convert list) at each first trace.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        features, labels = self.split_data(data)
        with tf.GradientTape() as tape:
            outputs = self(features, training=True)
            loss = self.total_loss(labels, outputs, features)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.update_metrics(labels, outputs, loss)

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        features, labels = self.split_data(data)
        outputs = self(features, training=False)
        return self.update_metrics(labels, outputs, self.total_loss(labels, outputs, features))

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

"""Embedding tables for the categorical and sequence inputs, with DIN's mini-batch-aware L2.

Every table of ``ModelInputs.tables`` is one ``[vocab_size, d]`` matrix W; a field is looked up in its table,
so fields sharing a vocabulary (``item_id`` and ``hist_item_id``) share rows.

Mini-batch-aware regularisation (Zhou et al., *Deep Interest Network for Click-Through Rate Prediction*, KDD 2018,
§5.1). L2 over all of W touches every row at every step, which is unaffordable for industrial vocabularies; DIN
instead regularises, at mini-batch m, only the rows that occur in it, weighted by the inverse of their frequency:

    L2(W) = Σ_j ‖w_j‖² = Σ_j Σ_m Σ_{(x,y) ∈ B_m} I(x_j ≠ 0) / n_j · ‖w_j‖²  ≈  Σ_j Σ_m α_mj / n_j · ‖w_j‖²

where α_mj = 1 if some example of B_m has id j (in any field using the table) and n_j is id j's number of
occurrences in the training data. The term added at each training step is therefore

    λ · Σ_{j ∈ B_m, j ≠ 0} ‖w_j‖² / n_j

(id 0, missing value and padding, is never penalised), which gives the paper's update
w_j ← w_j − η [1/|B_m| Σ ∂L/∂w_j + λ α_mj / n_j · w_j] up to the factor 2 of the square. Rare ids get the
strongest penalty. When no frequencies are given for a table, n_j falls back to the id's number of occurrences
in the current mini-batch: the same down-weighting of frequent ids, estimated from one batch.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.layers.initializers import fresh


class FieldEmbedding(tf.keras.layers.Layer):
    """Looks up every field that has a table: ``call(features, training=None) → {name: embedding}``.

    Categorical fields give ``[B, d]``, sequence fields ``[B, L, d]``; keys of ``features`` that no field names
    are ignored.

    Args:
        inputs: the model inputs; one table per ``inputs.tables`` entry, one lookup per field with a table.
        l2: λ of the mini-batch-aware L2 (added with ``add_loss`` in training only; 0 turns it off).
        frequencies: ``{table: array of vocab_size training-data counts}`` (n_j, clipped below at 1), kept as
            a non-trainable weight; tables left out use the in-batch count. Counts of tables these inputs do not
            have (a vocabulary only another model's inputs use, such as an auxiliary group's) are ignored.
        embeddings_initializer: initializer of the tables.
    """

    def __init__(self, inputs: ModelInputs, l2=0.0, frequencies=None, embeddings_initializer='uniform',
                 **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.l2 = l2
        self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
        self.table_fields = {table: tuple(f.name for f in inputs.fields if f.table == table)
                             for table in inputs.tables}
        self._frequencies = self._check_frequencies(frequencies or {})

    def _check_frequencies(self, frequencies):
        tables = self.model_inputs.tables
        checked = {}
        for table, counts in frequencies.items():
            if table not in tables:
                continue
            counts = np.asarray(counts, dtype=np.float32)
            if counts.shape != (tables[table][0],):
                raise ValueError(f'frequencies of table {table!r} have shape {counts.shape}, '
                                 f'expected ({tables[table][0]},)')
            checked[table] = np.maximum(counts, 1.0)
        return checked

    def build(self, input_shape):
        self.tables = {}
        self.frequencies = {}
        for table, (vocab_size, dim) in self.model_inputs.tables.items():
            self.tables[table] = self.add_weight(
                name=f'{table}/embeddings', shape=(vocab_size, dim), initializer=fresh(self.embeddings_initializer))
            if table in self._frequencies:
                self.frequencies[table] = self.add_weight(
                    name=f'{table}/frequencies', shape=(vocab_size,), trainable=False,
                    initializer=tf.keras.initializers.Constant(self._frequencies[table]))
        super().build(input_shape)

    def call(self, features, training=None):
        if training and self.l2:
            for table in self.tables:
                self.add_loss(self.regularization(table, features))
        return {field.name: tf.gather(self.tables[field.table], features[field.name])
                for field in self.model_inputs.fields if field.table is not None}

    def regularization(self, table, features):
        """λ · Σ_{j ∈ batch, j ≠ 0} ‖w_j‖² / n_j for one table (a scalar)."""
        ids = tf.concat([tf.reshape(features[name], [-1]) for name in self.table_fields[table]], axis=0)
        unique, _, counts = tf.unique_with_counts(ids)
        if table in self.frequencies:
            n = tf.gather(self.frequencies[table], unique)
        else:
            n = tf.cast(counts, tf.float32)
        present = tf.cast(tf.not_equal(unique, 0), tf.float32)
        squared_norms = tf.reduce_sum(tf.square(tf.gather(self.tables[table], unique)), axis=-1)
        return self.l2 * tf.reduce_sum(present * squared_norms / n)

    def get_config(self):
        """The config names the tables that have frequencies; their values travel with the weights."""
        return {**super().get_config(), 'inputs': self.model_inputs.to_dict(), 'l2': self.l2,
                'frequency_tables': sorted(self._frequencies),
                'embeddings_initializer': tf.keras.initializers.serialize(self.embeddings_initializer)}

    @classmethod
    def from_config(cls, config):
        """Rebuilds the layer with placeholder frequencies (ones), to be overwritten by loading weights."""
        config = dict(config)
        inputs, frequencies = pop_inputs_and_frequencies(config)
        return cls(inputs, frequencies=frequencies, **config)


def pop_inputs_and_frequencies(config: dict):
    """Takes ``inputs`` and ``frequency_tables`` out of a ``get_config`` dict: ``(ModelInputs, {table: ones})``.

    The placeholder frequencies give the tables their shapes; the real counts come back with the weights.
    """
    inputs = ModelInputs.from_dict(config.pop('inputs'))
    frequencies = {table: np.ones(inputs.tables[table][0], np.float32) for table in config.pop('frequency_tables')}
    return inputs, frequencies


class LinearEmbedding(FieldEmbedding):
    """The first-order weights w_i of FM (ŷ = w0 + Σ_i w_i x_i + …): a :class:`FieldEmbedding` whose tables
    are one column wide (``[B, 1]`` / ``[B, L, 1]`` per field) and start at zero."""

    def __init__(self, inputs: ModelInputs, l2=0.0, frequencies=None, embeddings_initializer='zeros', **kwargs):
        scalar = dataclasses.replace(inputs, fields=tuple(
            dataclasses.replace(f, embedding_dim=1) if f.table is not None else f for f in inputs.fields))
        super().__init__(scalar, l2=l2, frequencies=frequencies, embeddings_initializer=embeddings_initializer,
                         **kwargs)


class NumericEmbedding(tf.keras.layers.Layer):
    """A numeric field as an FM field: value x_f times a learned field vector v_f (``[B]`` → ``[B, dim]``).

    ``call(features) → {name: x_f · v_f}`` for each of ``names``; with ``dim=1`` this is the first-order term
    w_f · x_f.
    """

    def __init__(self, names, dim, initializer='uniform', **kwargs):
        super().__init__(**kwargs)
        self.names = tuple(names)
        self.dim = dim
        self.initializer = tf.keras.initializers.get(initializer)

    def build(self, input_shape):
        self.vectors = self.add_weight(name='vectors', shape=(len(self.names), self.dim),
                                       initializer=self.initializer)
        super().build(input_shape)

    def call(self, features):
        return {name: tf.cast(features[name], tf.float32)[:, tf.newaxis] * self.vectors[i]
                for i, name in enumerate(self.names)}

    def get_config(self):
        return {**super().get_config(), 'names': self.names, 'dim': self.dim,
                'initializer': tf.keras.initializers.serialize(self.initializer)}

"""The fields of the feature-interaction models (the FM family: Rendle, *Factorization Machines*, ICDM 2010): one
k-vector and one first-order weight per field.

    ŷ = w0 + Σ_i w_i x_i + f(e_1, …, e_n),    e_i = v_i x_i

* every non-sequence categorical input: e_i = its embedding row, w_i = its first-order weight (x_i = 1);
* every numeric input f: e_f = x_f · v_f with a learned field vector v_f, first order w_f · x_f;
* with ``use_behavior``, every behaviour sequence as a multi-valued field with values x_j: e = Σ_j x_j e_j, first
  order Σ_j x_j w_j. ``use_behavior=True`` (or ``'mean'``): x_j = 1/length, the masked mean; ``'learned'``: x_j
  learned from each step's time-gap bucket and behaviour type (:class:`~rec_models.layers.BehaviorStepValues`,
  starting at 1/L, L the maximum length), so that recent and strong behaviours can count more and a short
  history less.

Field order: the looked-up inputs in input order, then the numerics (:attr:`FieldVectors.field_names`). All fields
share one width k: the interactions (inner products, ⊙) need it, so the tables are sized to k whatever widths the
feature spec gives other models.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, NUMERIC, SEQUENCE, ModelInputs
from rec_models.layers.embedding import FieldEmbedding, LinearEmbedding, NumericEmbedding, pop_inputs_and_frequencies
from rec_models.layers.pooling import BEHAVIOR_MODES, BehaviorStepValues


class FieldVectors(tf.keras.layers.Layer):
    """``call(features, training=None) → {'vectors': [B, n, k], 'weights': [B, n]}`` (``vectors``: the e_i, only
    with ``vectors``; ``weights``: the first-order terms w_i x_i, only with ``first_order``).

    Args:
        inputs: the model inputs (their embedding widths are replaced by ``embedding_dim``).
        embedding_dim: k.
        use_behavior: add the behaviour sequences as fields: False (none), True or ``'mean'`` (x_j = 1/length) or
            ``'learned'`` (x_j learned from the steps' side information).
        l2: λ of the mini-batch-aware L2 on the embeddings and first-order weights (0: off).
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        first_order: build and return the first-order weights.
        vectors: build and return the field vectors (LR needs none).
        scale_numerics: a numeric field's vector is x_f · v_f; False: v_f itself, and the output has ``'values'``
            ``[B, n]``, the x_i (1 for looked-up fields), for interactions that are not bilinear in x (TransFM).
    """

    def __init__(self, inputs: ModelInputs, embedding_dim=8, use_behavior=False, l2=0.0, frequencies=None,
                 first_order=True, vectors=True, scale_numerics=True, **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.embedding_dim = embedding_dim
        self.use_behavior = use_behavior
        self.l2 = l2
        self.first_order = first_order
        self.vectors = vectors
        self.scale_numerics = scale_numerics
        if not (first_order or vectors):
            raise ValueError('FieldVectors needs first_order or vectors')
        sized = inputs.with_embedding_dim(embedding_dim)
        kinds = (CATEGORICAL, SEQUENCE) if use_behavior else (CATEGORICAL,)
        self.embedded = tuple(f for f in sized.fields if f.kind in kinds)
        self.numeric = sized.of_kind(NUMERIC)
        used = dataclasses.replace(sized, fields=self.embedded)
        self._frequencies = {t: c for t, c in (frequencies or {}).items() if t in used.tables}
        if vectors:
            self.embedding = FieldEmbedding(used, l2=l2, frequencies=self._frequencies, name='embedding')
            self.numeric_vectors = NumericEmbedding([f.name for f in self.numeric], embedding_dim,
                                                    name='numeric_vectors')
        if first_order:
            self.linear = LinearEmbedding(used, l2=l2, frequencies=self._frequencies, name='linear')
            self.numeric_weights = NumericEmbedding([f.name for f in self.numeric], 1, initializer='zeros',
                                                    name='numeric_weights')
        if use_behavior not in BEHAVIOR_MODES:
            raise ValueError(f'use_behavior must be one of {BEHAVIOR_MODES}, got {use_behavior!r}')
        self.step_values = BehaviorStepValues(inputs, use_behavior, name='step_values') if use_behavior else None

    @property
    def field_names(self):
        return tuple(f.name for f in self.embedded + self.numeric)

    @property
    def num_fields(self) -> int:
        return len(self.embedded) + len(self.numeric)

    def call(self, features, training=None):
        outputs = {}
        values = self.step_values(features) if self.step_values is not None else None
        if self.vectors:
            numerics = self.numeric_vectors(features) if self.scale_numerics else self._unscaled_numerics(features)
            outputs['vectors'] = self._stack(values, self.embedding(features, training=training), numerics)
            if not self.scale_numerics:
                outputs['values'] = self._values(features)
        if self.first_order:
            weights = self._stack(values, self.linear(features, training=training), self.numeric_weights(features))
            outputs['weights'] = tf.squeeze(weights, axis=-1)
        return outputs

    def _unscaled_numerics(self, features):
        """v_f for every numeric field: the numeric embedding of x = 1."""
        return self.numeric_vectors({f.name: tf.ones_like(features[f.name], tf.float32) for f in self.numeric})

    def _values(self, features):
        """x_i per field, ``[B, n]``: 1 for the looked-up fields, the value for the numerics."""
        rows = tf.shape(features[self.model_inputs.fields[0].name])[0]
        values = [tf.ones(tf.stack([rows, len(self.embedded)]))]
        values += [tf.cast(features[f.name], tf.float32)[:, tf.newaxis] for f in self.numeric]
        return tf.concat(values, axis=1)

    def _stack(self, values, embeddings, numerics):
        """Field vectors in field order: lookups (sequences pooled with their x_j ``values``), then numerics →
        ``[B, n, width]``."""
        vectors = []
        for field in self.embedded:
            if field.kind == SEQUENCE:
                vectors.append(tf.einsum('bl,bld->bd', values, embeddings[field.name]))
            else:
                vectors.append(embeddings[field.name])
        vectors += [numerics[f.name] for f in self.numeric]
        return tf.stack(vectors, axis=1)

    def get_config(self):
        return {**super().get_config(), 'inputs': self.model_inputs.to_dict(), 'embedding_dim': self.embedding_dim,
                'use_behavior': self.use_behavior, 'l2': self.l2, 'first_order': self.first_order,
                'vectors': self.vectors, 'scale_numerics': self.scale_numerics,
                'frequency_tables': sorted(self._frequencies)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        inputs, frequencies = pop_inputs_and_frequencies(config)
        return cls(inputs, frequencies=frequencies, **config)

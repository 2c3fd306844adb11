"""Field-aware factorization machines: FFM's pairwise term (Juan et al., *Field-aware Factorization Machines for CTR
Prediction*, RecSys 2016) and DeepFFM's embedding matrices (Zhang et al., *FAT-DeepFFM: Field Attentive Deep
Field-aware Factorization Machine*, ICDM 2019).

FFM gives every feature one latent vector per field and lets feature i meet feature j through the vector i keeps
for j's field:

    ŷ_FFM = w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_{i,f_j}, v_{j,f_i}⟩ x_i x_j

With one active feature per field, field i's embedding matrix E_i = [e_{i,1}, …, e_{i,n}] (``[n, k]``, DeepFFM's
"k × n embedding matrix" of each feature; e_{i,j} = v_{i,f_j} x_i) holds all of them, and the whole layer is the
tensor E ``[B, n, n, k]`` with E[:, i, j] = e_{i,j}. Only the n − 1 vectors e_{i,j}, j ≠ i, ever meet another
field; e_{i,i} is kept so that E is square, as in DeepFFM.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, NUMERIC, SEQUENCE, ModelInputs
from rec_models.layers.embedding import FieldEmbedding
from rec_models.layers.pooling import BehaviorStepValues

MODES = ('inner', 'hadamard')


def pair_indices(n):
    """The upper-triangle pairs i < j of n fields in row-major order, as two int arrays of n(n−1)/2 entries."""
    return np.triu_indices(n, k=1)


class FieldAwareInteraction(tf.keras.layers.Layer):
    """The field-aware pairwise interactions of FFM / DeepFFM: ``[B, n, n, k]`` → one entry per pair i < j.

    * ``'inner'``: ⟨e_{i,j}, e_{j,i}⟩ → ``[B, n(n−1)/2]``; their sum over the pairs is FFM's second-order term.
    * ``'hadamard'``: e_{i,j} ⊙ e_{j,i} → ``[B, n(n−1)/2, k]``, DeepFFM's Hadamard variant (its DNN input,
      flattened, has k·n(n−1)/2 entries).

    Pairs come in row-major order (0,1), (0,2), …, (n−2,n−1); each side is one gather over the flattened n × n
    grid.

    Args:
        mode: ``'inner'`` or ``'hadamard'``.
    """

    def __init__(self, mode='inner', **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; expected one of {MODES}')
        self.mode = mode

    def build(self, input_shape):
        n = input_shape[1]
        if input_shape[2] != n:
            raise ValueError(f'field-aware embeddings must be [B, n, n, k], got {input_shape}')
        rows, cols = pair_indices(n)
        self.left = tf.constant(rows * n + cols, tf.int32)  # e_{i,j}
        self.right = tf.constant(cols * n + rows, tf.int32)  # e_{j,i}
        super().build(input_shape)

    def call(self, embeddings):
        n, k = embeddings.shape[1], embeddings.shape[3]
        grid = tf.reshape(embeddings, [-1, n * n, k])
        products = tf.gather(grid, self.left, axis=1) * tf.gather(grid, self.right, axis=1)
        return tf.reduce_sum(products, axis=-1) if self.mode == 'inner' else products

    def get_config(self):
        return {**super().get_config(), 'mode': self.mode}


class FieldAwareEmbedding(FieldEmbedding):
    """DeepFFM's embedding-matrix layer: ``call(features, training=None) → E [B, n, n, k]``.

    The n fields are the categorical and numeric inputs and, with ``use_behavior``, the behaviour sequences, in
    ``inputs.fields`` order (:attr:`field_names`). Field i's matrix E_i ``[n, k]`` is

    * categorical: the row of its id in a table of width n·k, reshaped to ``[n, k]`` (the n vectors v_{x_i, f_j});
      fields sharing a vocabulary share the table, as in :class:`FieldEmbedding`;
    * numeric: x_i · V_i with V_i ``[n, k]`` learned (FFM's v_{i,f_j} x_i for a real-valued x_i);
    * sequence: a multi-valued field as in the FM family's fields (:class:`BehaviorStepValues`): Σ_j x_j of its
      ids' rows, reshaped to ``[n, k]`` (x_j = 1/length, the masked mean, or learned with ``use_behavior='learned'``).

    The tables are a :class:`FieldEmbedding` over the categorical fields with every width set to n·k, so the
    mini-batch-aware L2 (``l2``, ``frequencies``) applies unchanged: it penalises the whole n·k row of every id in
    the batch, i.e. all n field-aware vectors of that feature (e_{i,i} included, which no interaction uses). The
    numeric matrices are not regularised.

    Args:
        inputs: the model inputs; every table must have the same ``embedding_dim`` k
            (:meth:`ModelInputs.with_embedding_dim`), and there must be at least one categorical field.
        l2: λ of the mini-batch-aware L2 on the tables (training only; 0 turns it off).
        frequencies: ``{table: vocab_size counts}`` for the L2, as in :class:`FieldEmbedding`; tables of fields
            that are not looked up here are ignored.
        embeddings_initializer: initializer of the tables and of the numeric matrices.
        use_behavior: make every behaviour sequence a field (False, True/``'mean'`` or ``'learned'``).
    """

    def __init__(self, inputs: ModelInputs, l2=0.0, frequencies=None, embeddings_initializer='uniform',
                 use_behavior=False, **kwargs):
        kinds = (CATEGORICAL, NUMERIC, SEQUENCE) if use_behavior else (CATEGORICAL, NUMERIC)
        fields = tuple(f for f in inputs.fields if f.kind in kinds)
        dims = {f.embedding_dim for f in fields if f.kind != NUMERIC}
        if len(dims) != 1:
            raise ValueError(f'field-aware embeddings need one embedding_dim over the categorical fields, got {dims}')
        dim = dims.pop()
        wide = dataclasses.replace(inputs, fields=tuple(
            dataclasses.replace(f, embedding_dim=len(fields) * dim) for f in fields if f.kind != NUMERIC))
        frequencies = {t: c for t, c in (frequencies or {}).items() if t in wide.tables}
        super().__init__(wide, l2=l2, frequencies=frequencies, embeddings_initializer=embeddings_initializer,
                         **kwargs)
        self.field_inputs = inputs
        self.field_names = tuple(f.name for f in fields)
        self.numeric_names = tuple(f.name for f in fields if f.kind == NUMERIC)
        self.sequences = tuple(f for f in fields if f.kind == SEQUENCE)
        self.use_behavior = use_behavior
        self.step_values = BehaviorStepValues(inputs, use_behavior, name='step_values') if self.sequences else None
        self.dim = dim

    def build(self, input_shape):
        n = len(self.field_names)
        self.numeric_matrices = self.add_weight(name='numeric_matrices', shape=(len(self.numeric_names), n, self.dim),
                                                initializer=self.embeddings_initializer)
        super().build(input_shape)

    def call(self, features, training=None):
        n = len(self.field_names)
        rows = super().call(features, training=training)
        values = self.step_values(features) if self.sequences else None
        for field in self.sequences:  # [B, L, n·k] → Σ_j x_j row_j
            rows[field.name] = tf.einsum('bl,bld->bd', values, rows[field.name])
        matrices = {name: tf.reshape(row, [-1, n, self.dim]) for name, row in rows.items()}
        for i, name in enumerate(self.numeric_names):
            matrices[name] = tf.cast(features[name], tf.float32)[:, tf.newaxis, tf.newaxis] * self.numeric_matrices[i]
        return tf.stack([matrices[name] for name in self.field_names], axis=1)

    def get_config(self):
        """:class:`FieldEmbedding`'s config with the original inputs (the widths are recomputed from them)."""
        return {**super().get_config(), 'inputs': self.field_inputs.to_dict(), 'use_behavior': self.use_behavior}

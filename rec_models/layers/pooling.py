"""Masked pooling of a behaviour sequence into one vector.

For a sequence of embeddings ``e_1 … e_L`` (``[B, L, d]``) with a validity mask ``m_j`` (``[B, L]``):

    sum pooling:   u = Σ_j m_j · e_j
    mean pooling:  u = Σ_j m_j · e_j / max(Σ_j m_j, 1)

This is the pooling layer of the Embedding&MLP base model of the DIN paper (§4.2): a fixed-length user
vector that ignores the candidate ad. An empty sequence pools to the zero vector.

The interaction models take a sequence as one multi-valued field u = Σ_j x_j e_j with step values x_j
(:class:`BehaviorStepValues`: the mean's m_j / length, or the :class:`LearnedStepValues`).
"""

import tensorflow as tf

from feature_spec.model_inputs import SEQUENCE, ModelInputs

# How the interaction models take the behaviour sequences as fields (their ``use_behavior``): not at all, as the
# masked mean (True or 'mean'), or with learned step values ('learned').
BEHAVIOR_MODES = (False, True, 'mean', 'learned')


def _masked_sum(values, mask):
    """Σ_j m_j · e_j over axis 1, and the number of valid steps as ``[B, 1]``."""
    weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
    return tf.reduce_sum(values * weights, axis=1), tf.reduce_sum(weights, axis=1)


class MaskedSumPooling(tf.keras.layers.Layer):
    """u = Σ_j m_j · e_j: ``[B, L, d]`` and a ``[B, L]`` mask → ``[B, d]``."""

    def call(self, values, mask):
        return _masked_sum(values, mask)[0]


class MaskedMeanPooling(tf.keras.layers.Layer):
    """u = Σ_j m_j · e_j / max(Σ_j m_j, 1): ``[B, L, d]`` and a ``[B, L]`` mask → ``[B, d]``."""

    def call(self, values, mask):
        total, count = _masked_sum(values, mask)
        return total / tf.maximum(count, 1.0)


class LearnedStepValues(tf.keras.layers.Layer):
    """The values x_j of a behaviour sequence as a multi-valued FM field, learned from each step's side information:

        x_j = m_j · exp(Σ_s t_s[c_{s,j}]) / L

    over the side sequences s (time-gap bucket, behaviour type: the sequences with no target counterpart), each
    with a learned scalar table t_s, and L the sequences' maximum length. The pooled field is u = Σ_j x_j e_j. The
    tables start at 0, where x_j = m_j / L: a full history pools to its mean. Learning can then weigh recent or
    strong behaviours up, as DIN's time-gap inputs and the recency decay of the data do.

    Choice: the values are normalised by the constant L, not by the example's own length, so that u is a
    weighted *sum* of the behaviours: a short history weighs less than a long one with the same mix, as a
    recency-weighted count of matching behaviours does (the synthetic data's S_cat; README "The synthetic data").
    Chosen by measurement on the default data set against the division by the example's own length (README, "The
    feature-interaction family").

    ``call(side_ids, mask)``: ``side_ids`` {name: ``[B, L]`` int ids}, ``mask`` ``[B, L]`` → x ``[B, L]``.

    Args:
        vocab_sizes: {side sequence name: rows of its table}.
    """

    def __init__(self, vocab_sizes, **kwargs):
        super().__init__(**kwargs)
        self.vocab_sizes = dict(vocab_sizes)

    def build(self, input_shape):
        self.tables = {name: self.add_weight(name=f'{name}_log_value', shape=(size,), initializer='zeros')
                       for name, size in sorted(self.vocab_sizes.items())}
        super().build(input_shape)

    def call(self, side_ids, mask):
        log_values = tf.add_n([tf.gather(table, side_ids[name]) for name, table in self.tables.items()])
        present = tf.cast(mask, tf.float32)
        return present * tf.exp(log_values) / float(mask.shape[1])

    def get_config(self):
        return {**super().get_config(), 'vocab_sizes': self.vocab_sizes}


class BehaviorStepValues(tf.keras.layers.Layer):
    """The values x_j of the behaviour steps, one multi-valued field per sequence: ``call(features) → [B, L]``.

    ``mode`` True or ``'mean'``: x_j = m_j / max(Σ_j m_j, 1), the masked mean; ``'learned'``: the
    :class:`LearnedStepValues` of the side sequences (time gap, behaviour type: the sequences with no target
    counterpart). A field is then pooled as Σ_j x_j e_j.

    Raises:
        ValueError: an unknown mode, inputs with no sequence, or ``'learned'`` with no side sequence.
    """

    def __init__(self, inputs: ModelInputs, mode=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in BEHAVIOR_MODES[1:]:
            raise ValueError(f'use_behavior must be one of {BEHAVIOR_MODES}, got {mode!r}')
        sequences = inputs.of_kind(SEQUENCE)
        if not sequences:
            raise ValueError('use_behavior: the model inputs have no behaviour sequence')
        self.length_feature = inputs.sequence_length
        self.max_length = sequences[0].max_length
        self.learned = None
        if mode == 'learned':
            side = {f.name: f.vocab_size for f in sequences if f.query is None}
            if not side:
                raise ValueError("use_behavior='learned' needs a behaviour sequence with no target counterpart "
                                 '(time gap, behaviour type) to learn the values from')
            self.learned = LearnedStepValues(side, name='learned')

    def call(self, features):
        mask = tf.sequence_mask(features[self.length_feature], self.max_length)
        if self.learned is not None:
            return self.learned({name: features[name] for name in self.learned.vocab_sizes}, mask)
        present = tf.cast(mask, tf.float32)
        return present / tf.maximum(tf.reduce_sum(present, axis=1, keepdims=True), 1.0)

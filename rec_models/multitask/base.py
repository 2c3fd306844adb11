"""The base of the multi-task and debiasing models: a shared bottom under the towers, and the training-only inputs.

The bottom is what every tower (or MMoE expert) reads, chosen by the ``bottom`` hyper-parameter, so that every
model of the family works on any ranking backbone the spec supports:

* ``'interest'``: DIN's representation (Zhou et al., KDD 2018): [user profile, v_U(A), target item, context] with
  v_U(A) = Σ_j a(e_j, v_A) · [e_j, s_j] from the local activation unit over the behaviour sequence (the
  ``attention_weights`` output);
* ``'fields'``: the Embedding&MLP base model's: every non-sequence field (embeddings, numerics as they are) and each
  behaviour sequence mean-pooled over its valid steps; needs no behaviour sequence at all;
* ``'auto'`` (the default): ``'interest'`` when the spec has behaviour sequences with a target query, else
  ``'fields'``.

Both look every table up once with the mini-batch-aware L2 (λ = ``l2``). Training-only inputs (positions, privileged
features: ``ModelInputs.training_only``) are read with :meth:`MultiTaskModel.training_input`;
:meth:`MultiTaskModel.present` says whether a batch has one: at serving it never does.
"""

import tensorflow as tf

from feature_spec.model_inputs import GROUPS, SEQUENCE, ModelInputs
from rec_models.base import RankingModel
from rec_models.layers import MLP, AttentionPooling, FieldEmbedding, MaskedMeanPooling
from rec_models.sequence.behavior import behaviour_fields, behaviour_tensors, group_parts, mlp_input

BOTTOMS = ('auto', 'interest', 'fields')


class FieldsBottom(tf.keras.layers.Layer):
    """[every non-sequence field in group order, each behaviour sequence mean-pooled]: ``call(features) → [B, d]``."""

    def __init__(self, inputs: ModelInputs, l2=0.0, frequencies=None, **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.embedding = FieldEmbedding(inputs, l2=l2, frequencies=frequencies, name='embedding') \
            if inputs.tables else None
        self.pooling = MaskedMeanPooling(name='mean_pooling')

    def call(self, features, training=None):
        embeddings = self.embedding(features, training=training) if self.embedding is not None else {}
        parts = []
        for group in GROUPS:
            parts += group_parts(self.model_inputs, features, embeddings, group)
        sequences = self.model_inputs.of_kind(SEQUENCE)
        if sequences:
            mask = tf.sequence_mask(features[self.model_inputs.sequence_length], sequences[0].max_length)
            parts += [self.pooling(embeddings[f.name], mask=mask) for f in sequences]
        return tf.concat(parts, axis=-1), {}


class InterestBottom(tf.keras.layers.Layer):
    """DIN's MLP input: ``call(features) → ([B, d], {'attention_weights': [B, L]})``."""

    def __init__(self, inputs: ModelInputs, l2=0.0, frequencies=None, attention_units=(80, 40), activation='dice',
                 **kwargs):
        super().__init__(**kwargs)
        self.model_inputs = inputs
        self.keyed, self.side = behaviour_fields(inputs, 'the interest bottom')
        self.embedding = FieldEmbedding(inputs, l2=l2, frequencies=frequencies, name='embedding')
        self.attention = AttentionPooling(attention_units, activation=activation, name='attention')

    def call(self, features, training=None):
        embeddings = self.embedding(features, training=training)
        mask = tf.sequence_mask(features[self.model_inputs.sequence_length], self.keyed[0].max_length)
        keys, query, side = behaviour_tensors(self.keyed, self.side, embeddings)
        attention_inputs = {'keys': keys, 'query': query, **({'side': side} if side is not None else {})}
        interest, weights = self.attention(attention_inputs, mask=mask, training=training)
        return mlp_input(self.model_inputs, features, embeddings, interest), {'attention_weights': weights}


def has_behaviour(inputs: ModelInputs) -> bool:
    """Whether the inputs have behaviour sequences with a target query and a length (what DIN's bottom reads)."""
    return inputs.sequence_length is not None and any(f.query is not None for f in inputs.of_kind(SEQUENCE))


class MultiTaskModel(RankingModel):
    """The bottom and the helpers of the family; subclasses build their towers and tasks.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        bottom: ``'auto'``, ``'interest'`` or ``'fields'`` (module docstring).
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        attention_units: widths of the activation unit of the ``'interest'`` bottom.
        bottom_activation: its activation.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, bottom='auto', l2=1.0, attention_units=(80, 40),
                 bottom_activation='dice', **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if bottom not in BOTTOMS:
            raise ValueError(f'unknown bottom {bottom!r}; expected one of {BOTTOMS}')
        if bottom == 'auto':
            bottom = 'interest' if has_behaviour(inputs) else 'fields'
        self.bottom_hparams = {'bottom': bottom, 'l2': l2, 'attention_units': tuple(attention_units),
                               'bottom_activation': bottom_activation}
        if bottom == 'interest':
            self.bottom = InterestBottom(inputs, l2=l2, frequencies=frequencies, attention_units=attention_units,
                                         activation=bottom_activation, name='bottom')
        else:
            self.bottom = FieldsBottom(inputs, l2=l2, frequencies=frequencies, name='bottom')

    @staticmethod
    def tower(hidden_units, activation, dropout, name, output_units=1):
        """A task tower: an MLP with a linear output."""
        return MLP(hidden_units, activation=activation, dropout=dropout, output_units=output_units, name=name)

    def training_input(self, group: str, model: str):
        """The first training-only input of ``group`` (``position`` or ``privileged``); ValueError naming the spec kind
        when the spec has none."""
        fields = self.model_inputs.training_inputs(group)
        if not fields:
            raise ValueError(f'{model} needs a training-only column of kind {group!r} in the feature spec')
        return fields[0]

    @staticmethod
    def present(features, field) -> bool:
        """Whether the batch carries the training-only input ``field`` (never at serving)."""
        return field is not None and field.name in features



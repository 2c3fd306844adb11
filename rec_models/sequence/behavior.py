"""The base of the models that read the behaviour sequences step by step (DIN, DIEN, …).

The inputs are split as in DIN (Zhou et al., *Deep Interest Network for Click-Through Rate Prediction*, KDD 2018):

* the keys e_j: the concatenated embeddings of step j of the sequences that name a target ``query``
  (``hist_item_id``, ``hist_category``, ``hist_brand``), in sequence-field order;
* the query v_A: the concatenated embeddings of those target fields (``item_id``, ``category``, ``brand``), the same
  order and tables, so e_j and v_A have one width;
* the side information s_j: the concatenated embeddings of step j of the sequences with no query (time-gap
  bucket, behaviour type).

Every table is looked up by one :class:`~rec_models.layers.FieldEmbedding` with the mini-batch-aware L2. The final
MLP's input is every non-sequence field in group order (user, behaviour, item, context; numerics as they are)
with the model's user interest in the place of the behaviour group (:meth:`BehaviorModel.mlp_input`).

Models with an auxiliary task (DIEN's next-behaviour loss, DMR's negative-sampling loss) put its loss in their
training outputs under ``AUX_LOSS`` and declare it with :meth:`BehaviorModel.use_auxiliary_loss`: an
:class:`~rec_models.tasks.AuxiliaryLoss` task beside the click task, L = L_target + α · L_aux, reported as the
``aux_loss`` metric in training.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import BEHAVIOR, GROUPS, NUMERIC, SEQUENCE, AuxiliaryInputs, ModelInputs
from rec_models.base import RankingModel
from rec_models.layers import FieldEmbedding
from rec_models.tasks import AUX_LOSS, AuxiliaryLoss


class BehaviorModel(RankingModel):
    """Checks the sequence inputs and holds the embeddings; subclasses build the interest and the MLP.

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).

    Raises:
        ValueError: no sequence with a query, no length feature, sequences of several lengths, or a sequence whose
            width differs from its query's.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, l2=1.0, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.aux_weight = 0.0
        self.keyed, self.side = behaviour_fields(inputs, type(self).__name__)
        self.embedding = FieldEmbedding(self.embedded_inputs(inputs), l2=l2, frequencies=frequencies,
                                        name='embedding')

    def embedded_inputs(self, inputs: ModelInputs) -> ModelInputs:
        """The inputs the one embedding layer looks up (all of them); a model that reads the behaviours in
        another layout (DSIN's sessions) swaps the sequences for it, keeping the tables shared."""
        return inputs

    @staticmethod
    def auxiliary_group(inputs: ModelInputs, name: str, model: str, purpose: str) -> AuxiliaryInputs:
        """The spec's auxiliary group ``name`` that ``model`` reads for ``purpose``; ValueError naming the spec section
        when the spec has none."""
        try:
            return inputs.auxiliary_group(name)
        except KeyError as error:
            raise ValueError(f'{model} reads {purpose} from the auxiliary group {name!r}: give the feature spec an '
                             f'"auxiliary.{name}" section and its columns ({error.args[0]})') from None

    @staticmethod
    def with_auxiliary(inputs: ModelInputs, groups, kind=None) -> ModelInputs:
        """``inputs`` with the fields of the auxiliary ``groups`` (only those of ``kind``, when given) among those
        embedded (tables stay shared)."""
        return dataclasses.replace(inputs, fields=inputs.fields + tuple(
            f for g in groups for f in g.fields if kind is None or f.kind == kind))

    def auxiliary_steps(self, features, embeddings, group: AuxiliaryInputs):
        """``(steps [B, L, d], mask [B, L])`` of an auxiliary group's sequences: each step the concatenated embeddings
        of its sequences, those with a target ``query`` first (the keys), then the side information."""
        sequences = sorted((f for f in group.fields if f.kind == SEQUENCE), key=lambda f: f.query is None)
        mask = tf.sequence_mask(features[group.length_feature], sequences[0].max_length)
        return tf.concat([embeddings[f.name] for f in sequences], axis=-1), mask

    def use_auxiliary_loss(self, weight: float, *tasks) -> None:
        """Declares the tasks: the click task, an auxiliary loss the training outputs carry under ``AUX_LOSS``
        weighted by α = ``weight`` (0: off) and any further ``tasks``; ValueError for a negative weight."""
        if weight < 0:
            raise ValueError(f'aux_weight must be ≥ 0, got {weight}')
        self.aux_weight = weight
        self.set_tasks(self.tasks[0], *([AuxiliaryLoss(AUX_LOSS, weight)] if weight else []), *tasks)

    def trim_padding(self, features):
        """``(features, mask [B, T])``: the behaviour sequences cut to the batch's longest history, T = max_i length_i
        (at least 1, at most ``max_length``: a GRU needs a step), and their mask.

        Exact: the sequences are left-aligned (step j < length holds a behaviour, the rest is padding), so the steps
        from T on are padding in every row and nothing computed there reaches a valid output. What it saves grows as
        histories get shorter than ``max_length``: one ``rank`` request is one user, so its padded steps all go; a
        training batch keeps the width of its longest history. Outputs over the steps (attention weights) are padded
        back to ``max_length`` by :meth:`pad_steps`.
        """
        lengths = features[self.model_inputs.sequence_length]
        steps = tf.minimum(tf.maximum(tf.cast(tf.reduce_max(lengths), tf.int32), 1), self.keyed[0].max_length)
        trimmed = dict(features)
        for field in self.keyed + self.side:
            trimmed[field.name] = features[field.name][:, :steps]
        return trimmed, tf.sequence_mask(lengths, steps)

    def pad_steps(self, values):
        """``[B, T]`` per-step values of a trimmed batch (:meth:`trim_padding`) padded with 0 to ``[B, max_length]``."""
        full = self.keyed[0].max_length
        padded = tf.pad(values, [[0, 0], [0, full - tf.shape(values)[1]]])
        return tf.ensure_shape(padded, [None, full])

    @property
    def key_dim(self) -> int:
        """The width of e_j and v_A."""
        return sum(f.embedding_dim for f in self.keyed)

    def behaviours(self, embeddings):
        """``(keys [B, L, d], query [B, d], side [B, L, d_s] or None)`` from the looked-up embeddings."""
        return behaviour_tensors(self.keyed, self.side, embeddings)

    @staticmethod
    def with_side(keys, side):
        """x_j = [e_j, s_j], each behaviour's keys and side information (the keys alone without side sequences)."""
        return keys if side is None else tf.concat([keys, side], axis=-1)

    def group_parts(self, features, embeddings, group):
        """The non-sequence fields of ``group`` in input order: embeddings ``[B, d]``, numerics as ``[B, 1]``."""
        return group_parts(self.model_inputs, features, embeddings, group)

    def mlp_input(self, features, embeddings, interest, rows=None):
        """[user profile, interest, candidate, context] (:func:`mlp_input`)."""
        return mlp_input(self.model_inputs, features, embeddings, interest, rows)


def behaviour_fields(inputs: ModelInputs, model: str):
    """``(keyed, side)``: the behaviour sequences that name a target query (the keys e_j) and those that do not (the
    side information s_j). ValueError naming ``model`` when there is no keyed sequence or no length feature, when the
    sequences differ in length, or when a sequence and its query differ in width."""
    sequences = inputs.of_kind(SEQUENCE)
    keyed = tuple(f for f in sequences if f.query is not None)
    side = tuple(f for f in sequences if f.query is None)
    if not keyed or inputs.sequence_length is None:
        raise ValueError(f'{model} needs behaviour sequences with a query and a sequence_length feature')
    if len({f.max_length for f in sequences}) != 1:
        raise ValueError(f'{model} needs behaviour sequences of one max_length (they share one length feature)')
    for field in keyed:
        if inputs[field.query].embedding_dim != field.embedding_dim:
            raise ValueError(f'{field.name!r} and its query {field.query!r} differ in embedding width')
    return keyed, side


def behaviour_tensors(keyed, side, embeddings):
    """``(keys [B, L, d], query [B, d], side [B, L, d_s] or None)`` of :func:`behaviour_fields` from the looked-up
    embeddings."""
    keys = tf.concat([embeddings[f.name] for f in keyed], axis=-1)
    query = tf.concat([embeddings[f.query] for f in keyed], axis=-1)
    side_steps = tf.concat([embeddings[f.name] for f in side], axis=-1) if side else None
    return keys, query, side_steps


def group_parts(inputs: ModelInputs, features, embeddings, group):
    """The non-sequence fields of ``group`` in input order: embeddings ``[B, d]``, numerics as ``[B, 1]``."""
    return [tf.cast(features[f.name], tf.float32)[:, tf.newaxis] if f.kind == NUMERIC else embeddings[f.name]
            for f in inputs.in_group(group) if f.kind != SEQUENCE]


def mlp_input(inputs: ModelInputs, features, embeddings, interest, rows=None):
    """[user profile, interest, candidate, context]: every non-sequence field in group order, numerics as they are,
    ``interest`` ``[B, d_u]`` in the place of the behaviour group. With ``rows`` (``rank``), the parts of batch 1 are
    broadcast to the ``rows`` candidates."""
    parts = []
    for group in GROUPS:
        parts += group_parts(inputs, features, embeddings, group)
        if group == BEHAVIOR:
            parts.append(interest)
    if rows is not None:
        parts = [tf.broadcast_to(part, tf.stack([rows, part.shape[-1]])) for part in parts]
    return tf.concat(parts, axis=-1)


class RequestOnceModel(BehaviorModel):
    """A behaviour model whose outputs come from ``_score(features, training, rows=None)``. ``call`` scores a batch;
    ``rank(context, candidates)`` scores one request (features of batch 1) against N candidates (batch N) with
    ``rows`` = N, so that whatever does not depend on the candidate (the behaviour embeddings, DIEN's extractor,
    DUPN's user representation) is computed once and broadcast (the model split of DUPN: Ni et al., *Perceive Your
    Users in Depth: Learning Universal User Representations from Multiple E-commerce Tasks*, KDD 2018, §4.2)."""

    def call(self, features, training=False):
        return self._score(features, training)

    def rank(self, context, candidates):
        count = tf.shape(next(iter(candidates.values())))[0]
        return self._score({**context, **candidates}, training=False, rows=count)

    def _score(self, features, training, rows=None):
        raise NotImplementedError


def next_behaviour_loss(states, keys, mask, item_ids):
    """DIEN's auxiliary loss (eq. 1; also DMIN's): each state h_t against the next behaviour e_{t+1} and a
    behaviour the user did not take, ê_{t+1}:

        L_aux = −1/N Σ_i Σ_t [log σ(⟨h_t^i, e^i[t+1]⟩) + log(1 − σ(⟨h_t^i, ê^i[t+1]⟩))]

    over the valid pairs, normalised by their number. Choice (the paper samples ê from the item set less the
    clicked item; its code reads pre-sampled negatives from the data): ê_{t+1} is the behaviour at the same step of
    another example of the mini-batch (the batch rolled by one row; batches are shuffled), so negatives follow the
    behaviour distribution and need no extra lookup; a pair is dropped when that step is padding or holds the same
    item.

    ``states`` ``[B, L, d]``, ``keys`` ``[B, L, d]``, ``mask`` ``[B, L]``, ``item_ids`` ``[B, L]`` (the ids that
    make a negative equal to its positive) → a scalar.
    """
    h = states[:, :-1]
    positive_valid = tf.cast(mask[:, 1:], tf.float32)
    negative_keys = tf.roll(keys, shift=1, axis=0)[:, 1:]
    negative_valid = positive_valid * tf.cast(tf.roll(mask, shift=1, axis=0)[:, 1:], tf.float32) * tf.cast(
        tf.not_equal(tf.roll(item_ids, shift=1, axis=0)[:, 1:], item_ids[:, 1:]), tf.float32)
    positive = tf.reduce_sum(h * keys[:, 1:], axis=-1)                              # ⟨h_t, e_{t+1}⟩
    negative = tf.reduce_sum(h * negative_keys, axis=-1)                           # ⟨h_t, ê_{t+1}⟩
    total = tf.reduce_sum(positive_valid * tf.nn.softplus(-positive) + negative_valid * tf.nn.softplus(negative))
    return total / tf.maximum(tf.reduce_sum(positive_valid), 1.0)


def recency_ranks(lengths, max_length: int):
    """``[B, max_length]`` rank of each step from the newest valid one (0), clipped to [0, max_length − 1] (padded
    steps get 0): the index of DMR's and DMIN's position embeddings."""
    steps = tf.range(max_length, dtype=lengths.dtype)
    return tf.clip_by_value(lengths[:, tf.newaxis] - 1 - steps[tf.newaxis, :], 0, max_length - 1)

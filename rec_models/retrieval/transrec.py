"""TransRec (He, Kang & McAuley, *Translation-based Recommendation*, RecSys 2017, arXiv:1707.02410).

Items are points γ_i of a transition space R^d, users translation vectors: a user at item i moves to γ_i + T_u
and the next item j is expected near that point (§3):

    T_u = t + t_u                                          t global, t_u the user's offset (0 for a new user)
    Prob(j | u, i) ∝ β_j − d(γ_i + T_u, γ_j),   γ_i ∈ Ψ    d the squared L2 distance, β_j an item bias,
                                                           Ψ the unit ball (‖γ_i‖ ≤ 1)
    S-BPR:  L = −1/|P| Σ_{(u, i, j, j⁻) ∈ P} ln σ(p̂_{u,i,j} − p̂_{u,i,j⁻})      j⁻ sampled, j⁻ ∉ S_u

with i the user's previous item (the last step of the behaviour history) and j the row's positive.

**As a retrieval model** the score must be an inner product ⟨q, c⟩ for the index. With x = γ_i + T_u,

    β_j − ‖x − γ_j‖² = 2⟨x, γ_j⟩ + β_j − ‖γ_j‖² − ‖x‖²

and the last term is the same for every candidate of a query, so

    q(u, i) = [2x, 1] ∈ R^{d+1},     c(j) = [γ_j, β_j − ‖γ_j‖²] ∈ R^{d+1},     ⟨q, c⟩ = score(u, i, j) + ‖x‖²

ranks the items of each query exactly as the distance form does (``query_embedding`` and ``candidate_embedding``
return q and c; the exported index holds the c's). The S-BPR difference p̂_j − p̂_{j⁻} is the same in both forms.

The loss is the model's own (:class:`~rec_models.tasks.auxiliary.AuxiliaryLoss` on ``transrec_loss``, computed in
training and evaluation); a weight-0 :class:`~rec_models.tasks.retrieval.RetrievalTask` reports the full-ranking
metrics.

Choices:

* Choice (Ψ): the unit-ball constraint is a reparametrisation: every γ the model reads is
  γ / max(1, ‖γ‖) (the projection the paper applies after each update), so the constraint holds whatever the
  optimizer or update schedule, and the served index uses exactly the projected points.
* Choice (user translation, ``user_field``): the synthetic spec keeps ``user_id`` as a key, not a model input, so
  t_u is optional. ``auto`` uses the user-group categorical input named ``user_id`` when the inputs have one (and
  no t_u otherwise: T_u = t for everyone, the paper's new-user rule applied to all); a field name uses that
  input (ValueError if it is not a categorical input); None turns t_u off.
* Choice (new users): t_u = 0 for id 0 (missing) and ids outside the table; the t_u table starts at 0, so an id
  no training batch carried (a user of an OOV bucket, or any user first seen after training) keeps t_u = 0
  exactly (a row never read gets no gradient and no regularisation). The model is not told which ids are OOV
  buckets; an OOV bucket that training users fell into (a vocabulary cut by frequency) has its learned, shared t_u.
* Choice (no previous item): a row with an empty history uses γ_0 (the padding id's row) as its "start" item: a
  learned point, never indexed.
* Choice (negatives): ``num_negatives`` items a positive row, uniform over the indexed items 1…n (the paper samples
  j⁻ uniformly, one a triple; default 1). A draw equal to the row's positive or to an item of its history
  (the part of S_u the row knows) is dropped from the mean. Item ids only: side features are not used (the paper's
  model has none).
* Choice (Ω): ``l2`` λ · (‖γ‖² and β² of the rows a batch reads, ‖t_u‖², ‖t‖²) per positive row, in training
  (the paper's L2 regulariser, applied as SGD applies it: to the parameters of the sampled triples).
* Choice (defaults): d = 32 (the paper's experiments use a small fixed d; we did not verify the value).
"""

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, USER, ModelInputs
from rec_models.registry import register
from rec_models.retrieval.base import RetrievalModel
from rec_models.tasks.auxiliary import AuxiliaryLoss
from rec_models.tasks.retrieval import RetrievalTask

TRANSREC_LOSS = 'transrec_loss'
NEGATIVE_IDS = 'transrec_negative_ids'
NEGATIVE_MASK = 'transrec_negative_mask'
AUTO = 'auto'


def unit_ball(x):
    """x / max(1, ‖x‖) along the last axis: the projection onto the unit L2 ball."""
    return x / tf.maximum(1.0, tf.norm(x, axis=-1, keepdims=True))


def user_id_field(inputs: ModelInputs, user_field):
    """The user id input t_u is looked up by (None for none): see the module's ``user_field`` choice."""
    if user_field is None:
        return None
    if user_field == AUTO:
        return next((f for f in inputs.in_group(USER) if f.name == 'user_id' and f.kind == CATEGORICAL), None)
    field = next((f for f in inputs.fields if f.name == user_field), None)
    if field is None or field.kind != CATEGORICAL:
        raise ValueError(f'user_field {user_field!r} is not a categorical model input (categorical inputs: '
                         f'{[f.name for f in inputs.of_kind(CATEGORICAL)]})')
    return field


@register('transrec')
class TransRec(RetrievalModel):
    """γ_i + T_u ≈ γ_j, trained with S-BPR, served as an inner product (module docstring).

    Args:
        embedding_dim: d, the width of γ and of the translations (q and c are d + 1 wide).
        user_field: ``auto``, the name of the user id input, or None (no t_u).
        num_negatives: sampled j⁻ a positive row.
        l2: λ of Ω.
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=32, user_field=AUTO, num_negatives=1,
                 l2=0.0, **kwargs):
        self.check_hparams(dict(embedding_dim=embedding_dim, num_negatives=num_negatives, l2=l2))
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.user = user_id_field(inputs, user_field)
        self.hparams.update(embedding_dim=embedding_dim, user_field=user_field, num_negatives=num_negatives, l2=l2)
        if self.seen_field is None:
            raise ValueError('TransRec needs the behaviour history of item ids (a sequence sharing the item id '
                             f'table {self.item_id.table!r}): its last step is the previous item i')
        self.gamma = self.add_weight(name='transrec/item_points', shape=(self.num_items, embedding_dim),
                                     initializer=tf.keras.initializers.TruncatedNormal(stddev=0.1))
        self.beta = self.add_weight(name='transrec/item_biases', shape=(self.num_items,), initializer='zeros')
        self.translation = self.add_weight(name='transrec/translation', shape=(embedding_dim,), initializer='zeros')
        self.user_translations = (None if self.user is None else self.add_weight(
            name='transrec/user_translations', shape=(self.user.vocab_size, embedding_dim), initializer='zeros'))
        self.set_tasks(RetrievalTask(inputs.label, weight=0.0, top_ks=self.hparams['top_ks']),
                       AuxiliaryLoss(TRANSREC_LOSS))

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        for name in ('embedding_dim', 'num_negatives'):
            if hparams.get(name, 1) < 1:
                raise ValueError(f'{name} must be ≥ 1, got {hparams[name]}')
        if hparams.get('l2', 0.0) < 0:
            raise ValueError(f'l2 must be ≥ 0, got {hparams["l2"]}')
        user_field = hparams.get('user_field', AUTO)
        if user_field is not None and not (isinstance(user_field, str) and user_field):
            raise ValueError(f'user_field must be "auto", an input name or None, got {user_field!r}')

    # The model in its distance form.
    def points(self, ids):
        """γ̃ ``[..., d]``: the items' points, projected onto the unit ball."""
        return unit_ball(tf.gather(self.gamma, ids))

    def previous_items(self, features):
        """i ``[B]``: the last valid step of the history (0, the start point, for an empty history)."""
        history = tf.cast(features[self.seen_field.name], tf.int64)
        length = tf.cast(features[self.model_inputs.sequence_length], tf.int64)
        last = tf.gather(history, tf.maximum(length - 1, 0), batch_dims=1)
        return tf.where(length > 0, last, tf.zeros_like(last))

    def user_translation(self, features):
        """t_u ``[B, d]`` (0 for id 0, ids outside the table, and without a user input)."""
        if self.user_translations is None or self.user.name not in features:
            return None
        ids = tf.cast(tf.reshape(features[self.user.name], [-1]), tf.int64)
        known = tf.logical_and(ids >= 1, ids < self.user.vocab_size)
        offsets = tf.gather(self.user_translations, tf.where(known, ids, tf.zeros_like(ids)))
        return offsets * tf.cast(known, offsets.dtype)[:, tf.newaxis]

    def translated(self, features):
        """x = γ̃_i + T_u ``[B, d]``."""
        x = self.points(self.previous_items(features)) + self.translation
        offsets = self.user_translation(features)
        return x if offsets is None else x + offsets

    def distance_scores(self, x, ids):
        """β_j − ‖x − γ̃_j‖² for ``x`` ``[B, d]`` and ``ids`` ``[B]`` or ``[B, n]``."""
        points = self.points(ids)
        if ids.shape.rank == 2:
            x = x[:, tf.newaxis, :]
        return tf.gather(self.beta, ids) - tf.reduce_sum(tf.square(x - points), axis=-1)

    # The inner-product form the index serves.
    def query_embedding(self, features, training=False):
        """q = [2x, 1] ``[B, d + 1]``."""
        x = self.translated(features)
        return tf.concat([2.0 * x, tf.ones_like(x[:, :1])], axis=-1)

    def candidate_embedding(self, item_features, training=False):
        """c = [γ̃_j, β_j − ‖γ̃_j‖²] ``[N, d + 1]``."""
        ids = tf.cast(item_features[self.item_id.name], tf.int64)
        points = self.points(ids)
        offset = tf.gather(self.beta, ids) - tf.reduce_sum(tf.square(points), axis=-1)
        return tf.concat([points, offset[:, tf.newaxis]], axis=-1)

    # S-BPR.
    def sample_negatives(self, rows):
        """j⁻ ``[rows, num_negatives]``, uniform over the indexed items 1…n."""
        return tf.random.uniform([rows, self.hparams['num_negatives']], 1, self.index_size + 1, dtype=tf.int64)

    def negative_mask(self, features, negatives):
        """Which draws count: not the row's positive, not an item of its (valid) history."""
        positive = tf.cast(features[self.item_id.name], tf.int64)[:, tf.newaxis]
        history = tf.cast(features[self.seen_field.name], tf.int64)
        valid = self.sequence_mask(features, self.seen_field)
        history = tf.where(valid, history, -tf.ones_like(history))
        seen = tf.reduce_any(tf.equal(negatives[:, :, tf.newaxis], history[:, tf.newaxis, :]), axis=-1)
        return tf.logical_and(tf.not_equal(negatives, positive), tf.logical_not(seen))

    def sbpr_loss(self, features, negatives, rows=None):
        """−ln σ(p̂_j − p̂_{j⁻}), averaged over the counted (positive row, draw) pairs, and the draws' mask."""
        x = self.translated(features)
        positive = tf.cast(features[self.item_id.name], tf.int64)
        margin = self.distance_scores(x, positive)[:, tf.newaxis] - self.distance_scores(x, negatives)
        counted = tf.cast(self.negative_mask(features, negatives), tf.float32)
        if rows is not None:
            counted *= rows[:, tf.newaxis]
        loss = tf.reduce_sum(tf.nn.softplus(-margin) * counted) / tf.maximum(tf.reduce_sum(counted), 1.0)
        return loss, counted

    def positive_rows(self, features):
        """``[B]`` 1/0: the rows whose label is positive (every row without a label)."""
        label = features.get(self.model_inputs.label)
        if label is None:
            return None
        return tf.cast(tf.reshape(tf.cast(label, tf.float32), [-1]) > 0.5, tf.float32)

    def regularization(self, features, negatives, rows):
        """Ω: λ · the squared norms of the parameters the batch's triples read, per positive row."""
        positive = tf.cast(features[self.item_id.name], tf.int64)
        ids = tf.concat([self.previous_items(features)[:, tf.newaxis], positive[:, tf.newaxis], negatives], axis=1)
        per_row = (tf.reduce_sum(tf.square(tf.gather(self.gamma, ids)), axis=[1, 2])
                   + tf.reduce_sum(tf.square(tf.gather(self.beta, ids[:, 1:])), axis=1))
        offsets = self.user_translation(features)
        if offsets is not None:
            per_row += tf.reduce_sum(tf.square(offsets), axis=1)
        rows = tf.ones_like(per_row) if rows is None else rows
        mean = tf.reduce_sum(per_row * rows) / tf.maximum(tf.reduce_sum(rows), 1.0)
        return self.hparams['l2'] * (mean + tf.reduce_sum(tf.square(self.translation)))

    def call(self, features, training=False):
        outputs = super().call(features, training=training)
        rows = self.positive_rows(features)
        negatives = self.sample_negatives(tf.shape(features[self.item_id.name], out_type=tf.int64)[0])
        loss, counted = self.sbpr_loss(features, negatives, rows)
        outputs.update({TRANSREC_LOSS: loss, NEGATIVE_IDS: negatives, NEGATIVE_MASK: counted})
        if training and self.hparams['l2']:
            self.add_loss(self.regularization(features, negatives, rows))
        return outputs

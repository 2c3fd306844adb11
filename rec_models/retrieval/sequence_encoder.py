"""What SASRec and BERT4Rec share: a transformer over the item-id history, the item table tied to the output, and
next-item losses computed by the model itself.

**Encoder** (:class:`SequenceEncoder`). The history i_0 … i_{n−1} (the behaviour sequence sharing the item id's table,
left-aligned, oldest first, n ≤ L valid steps) is embedded as

    x_j = s · M_{i_j} + P_j          (M the item table, P the learned positions, s = √d for SASRec, 1 for BERT4Rec)

then dropout (BERT4Rec: LayerNorm, then dropout), b transformer blocks, and the steps j ≥ n are zeroed. Two block
layouts: ``pre_norm`` (SASRec's, Kang & McAuley 2018, §III-C: g'(x) = x + Dropout(g(LayerNorm(x))) for g the
self-attention and the feed-forward layer, and a last LayerNorm as its released code has) and post-norm (BERT4Rec's,
Sun et al. 2019, eq. 2–4: :class:`~rec_models.layers.TransformerBlock`, LayerNorm(x + Dropout(g(x)))).

Choice: positions are numbered from the oldest step of the window (P_0 for i_0), as BERT4Rec's released code and
Klenitskiy & Vasilev's code number them; SASRec's code right-aligns the window, so its last item is always at P_{L−1}.
With the oldest-first numbering a causal encoder is strictly causal: the output at step t depends on i_0 … i_t only
(not on n), so the training output at step t of a row *is* the query of the row whose history is i_0 … i_t.

**Losses** (:meth:`SequenceRetrievalModel.softmax_loss`), each over the positions that predict an item, a mean over
them (rows whose label is 0, when the features carry the label, take no part):

* ``softmax``: the full softmax over the item table, −log e^{⟨u_t, v_y⟩} / Σ_j e^{⟨u_t, v_j⟩} (BERT4Rec's, and
  Klenitskiy & Vasilev's SASRec+); the ids outside 1…n (padding, OOV buckets) are left out of the sum, the target
  excepted. Its logits are M × V floats (M positions a batch), so it is refused beyond
  :data:`FULL_SOFTMAX_MAX_ITEMS` items.
* ``sampled_softmax``: the same softmax over the target and ``num_negatives`` ids drawn uniformly, with
  replacement, from 1…n once a batch and shared by all its positions (M × N logits); a drawn id equal to the
  position's target is removed (an accidental hit). A uniform proposal's −log Q correction is one constant for every logit, so it cancels.
  Klenitskiy & Vasilev (RecSys 2023, "SASRec+ 3000") draw 3000 uniform negatives per sequence, shared by its
  positions, among the items the user has not seen; sharing them across the batch instead costs one gather of
  N rows and makes no exclusion.
* ``bce`` (SASRec only): the paper's binary cross-entropy with one negative per position (its own module).

**The auxiliary loss.** The model's ``call`` puts the scalar loss under ``outputs['sequence_loss']`` in training and in
evaluation (so a validation loss exists); the tasks are :class:`~rec_models.tasks.auxiliary.AuxiliaryLoss` on it
and a weight-0 :class:`~rec_models.tasks.retrieval.RetrievalTask` that only reports the full-ranking metrics. The
sequence is encoded once a call: :meth:`SequenceRetrievalModel.call` encodes it, and the base class's call reads the
query from that encoding.
"""

import contextlib
from typing import Dict

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.layers.transformer import TransformerBlock
from rec_models.retrieval.base import RetrievalModel
from rec_models.tasks.auxiliary import AuxiliaryLoss
from rec_models.tasks.retrieval import NEG_INF, RetrievalTask

SEQUENCE_LOSS = 'sequence_loss'
SOFTMAX, SAMPLED_SOFTMAX, BCE = 'softmax', 'sampled_softmax', 'bce'
# The full softmax's item-count limit: 2^16 covers the papers' data sets (ML-1m 3.4k, Steam 13k, ML-20m 27k, Beauty
# 54k items); BERT4Rec's logits are then B·(ρL + 1) × V floats a batch (256 · 11 × 65,536 · 4 B ≈ 0.7 GB at L = 50).
FULL_SOFTMAX_MAX_ITEMS = 1 << 16


class SequenceEncoder(tf.keras.layers.Layer):
    """Item vectors of a left-aligned sequence → the transformer's outputs (module docstring).

    ``call(item_vectors [B, L, d], lengths [B], training=None) → [B, L, d]`` (zeros at the padded steps j ≥ length).

    Args:
        max_length: L, the rows of the position table.
        blocks: b.
        heads: h (d_h = d / h).
        dropout: on the embeddings and in the blocks.
        causal: causal attention (SASRec) or bidirectional (BERT4Rec).
        pre_norm: SASRec's pre-LayerNorm blocks and last LayerNorm, else BERT's post-LayerNorm blocks with a
            LayerNorm on the embeddings.
        activation: σ of the feed-forward layers.
        ffn_units: their hidden width (0: d for pre-norm blocks, 4d for post-norm ones).
        scale: s, the factor of the item vectors (SASRec's code: √d).
        position_initializer: of P.
    """

    def __init__(self, max_length, blocks=2, heads=1, dropout=0.2, causal=True, pre_norm=True, activation='relu',
                 ffn_units=0, scale=1.0, position_initializer='glorot_uniform', **kwargs):
        super().__init__(**kwargs)
        self.max_length, self.blocks, self.heads, self.dropout = max_length, blocks, heads, dropout
        self.causal, self.pre_norm, self.activation, self.ffn_units = causal, pre_norm, activation, ffn_units
        self.scale, self.position_initializer = scale, position_initializer

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.positions = self.add_weight(name='positions', shape=(self.max_length, d),
                                         initializer=self.position_initializer)
        self.drop = tf.keras.layers.Dropout(self.dropout)
        if self.pre_norm:
            # SASRec's block: pre-LayerNorm, a d × d feed-forward layer by default (§III-B, C).
            self.stack = [TransformerBlock(self.heads, d // self.heads, self.ffn_units or d, self.dropout,
                                           self.activation, causal=self.causal, pre_norm=True, norm_epsilon=1e-8,
                                           name=f'block_{i}') for i in range(self.blocks)]
            self.last_norm = tf.keras.layers.LayerNormalization(epsilon=1e-8, name='last_norm')
        else:
            self.stack = [TransformerBlock(self.heads, d // self.heads, self.ffn_units, self.dropout, self.activation,
                                           causal=self.causal, name=f'block_{i}') for i in range(self.blocks)]
            self.embedding_norm = tf.keras.layers.LayerNormalization(epsilon=1e-12, name='embedding_norm')
        super().build(input_shape)

    def call(self, item_vectors, lengths, training=None):
        steps = tf.shape(item_vectors)[1]
        mask = tf.sequence_mask(lengths, steps)
        valid = tf.cast(mask, item_vectors.dtype)[..., tf.newaxis]
        x = item_vectors * self.scale + self.positions[tf.newaxis, :steps]
        if not self.pre_norm:
            x = self.embedding_norm(x)
        x = self.drop(x, training=training) * valid
        for block in self.stack:
            x, _ = block(x, mask, training=training)
        if self.pre_norm:
            x = self.last_norm(x) * valid
        return x

    def get_config(self):
        return {**super().get_config(), 'max_length': self.max_length, 'blocks': self.blocks, 'heads': self.heads,
                'dropout': self.dropout, 'causal': self.causal, 'pre_norm': self.pre_norm,
                'activation': self.activation, 'ffn_units': self.ffn_units, 'scale': self.scale,
                'position_initializer': self.position_initializer}


def gather_steps(values, steps):
    """``values [B, L, …]`` at one step a row (``steps [B]``, clipped to [0, L − 1]) → ``[B, …]``."""
    steps = tf.clip_by_value(tf.cast(steps, tf.int32), 0, tf.shape(values)[1] - 1)
    return tf.gather(values, steps, axis=1, batch_dims=1)


def newest_window(values, lengths, steps: int):
    """The newest ``steps`` valid entries of each row of the left-aligned ``values [B, S, …]`` (S ≥ steps), still
    left-aligned: ``(values [B, steps, …], lengths [B])``; a row with more than ``steps`` valid entries drops its
    oldest."""
    lengths = tf.cast(lengths, tf.int32)
    start = tf.maximum(lengths - steps, 0)
    index = start[:, tf.newaxis] + tf.range(steps)[tf.newaxis, :]
    return tf.gather(values, index, axis=1, batch_dims=1), tf.minimum(lengths, steps)


class SequenceRetrievalModel(RetrievalModel):
    """The base of SASRec and BERT4Rec: the item table, the tasks, one encoding a call, the softmax losses.

    A subclass builds its encoder and implements :meth:`encode` (a dict with at least ``query``) and
    :meth:`sequence_loss`.

    Args:
        embedding_dim: d, the width of the item table (tied: the input and the output embeddings) and of the encoder.
        blocks: b, transformer blocks.
        heads: h, attention heads (d must be a multiple of h).
        dropout: the dropout rate of the encoder.
        loss: one of the class's :attr:`LOSSES` (module docstring).
        num_negatives: N of ``sampled_softmax``.
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    LOSSES = (SAMPLED_SOFTMAX, SOFTMAX)

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=50, blocks=2, heads=1, dropout=0.2,
                 loss=SAMPLED_SOFTMAX, num_negatives=1000, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams.update(embedding_dim=embedding_dim, blocks=blocks, heads=heads, dropout=dropout, loss=loss,
                            num_negatives=num_negatives)
        type(self).check_hparams(self.hparams)
        if self.seen_field is None:
            raise ValueError(f'{type(self).__name__} reads the behaviour sequence of item ids: the feature spec needs '
                             f'a behaviour sequence sharing the table {self.item_id.table!r} of the item id '
                             f'{self.item_id.name!r}')
        if loss == SOFTMAX and self.num_items > FULL_SOFTMAX_MAX_ITEMS:
            raise ValueError(f"loss: the full softmax over {self.num_items} items is refused beyond "
                             f"{FULL_SOFTMAX_MAX_ITEMS} (its logits are positions × items a batch); use "
                             f"loss='{SAMPLED_SOFTMAX}'")
        self.max_length = int(self.seen_field.max_length)
        object.__setattr__(self, '_encoding', None)
        self.set_tasks(RetrievalTask(inputs.label, weight=0.0, top_ks=self.hparams['top_ks']),
                       AuxiliaryLoss(SEQUENCE_LOSS))

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        for name in ('embedding_dim', 'blocks', 'heads', 'num_negatives'):
            if name in hparams and (not isinstance(hparams[name], int) or hparams[name] < 1):
                raise ValueError(f'{name} must be an integer ≥ 1, got {hparams[name]!r}')
        if hparams.get('embedding_dim', 0) % hparams.get('heads', 1):
            raise ValueError(f'heads must divide embedding_dim ({hparams["embedding_dim"]}), got {hparams["heads"]}')
        if not 0 <= hparams.get('dropout', 0.0) < 1:
            raise ValueError(f'dropout must be in [0, 1), got {hparams["dropout"]}')
        if hparams.get('loss', cls.LOSSES[0]) not in cls.LOSSES:
            raise ValueError(f'loss must be one of {cls.LOSSES}, got {hparams["loss"]!r}')

    def item_history(self, features):
        """``(item ids [B, L] int64, lengths [B] int32)`` of the behaviour sequence."""
        ids = tf.cast(features[self.seen_field.name], tf.int64)
        lengths = tf.minimum(tf.cast(tf.reshape(features[self.model_inputs.sequence_length], [-1]), tf.int32),
                             self.max_length)
        return ids, lengths

    def target_ids(self, features):
        """``[B]`` int64: the row's target item (0s when the features have no item id, as a bare query has not)."""
        if self.item_id.name not in features:
            return tf.zeros(tf.shape(features[self.seen_field.name])[:1], tf.int64)
        return tf.reshape(tf.cast(features[self.item_id.name], tf.int64), [-1])

    def row_weights(self, features):
        """``[B]``: 1 for the rows whose label is positive (every row when the features do not carry the label)."""
        label = features.get(self.model_inputs.label)
        if label is None:
            return tf.ones(tf.shape(features[self.seen_field.name])[:1], tf.float32)
        return tf.cast(tf.reshape(tf.cast(label, tf.float32), [-1]) > 0.5, tf.float32)

    def encode(self, features, training=False) -> Dict[str, tf.Tensor]:
        """The encoding of a batch: a dict with ``query`` (``[B, d′]``) and what :meth:`sequence_loss` needs."""
        raise NotImplementedError

    def sequence_loss(self, features, encoding, training=False) -> tf.Tensor:
        """The scalar loss of the batch from its :meth:`encode`."""
        raise NotImplementedError

    def query_embedding(self, features, training=False):
        encoding = self._encoding if self._encoding is not None else self.encode(features, training=training)
        return encoding['query']

    @contextlib.contextmanager
    def _encoded(self, encoding):
        object.__setattr__(self, '_encoding', encoding)
        try:
            yield
        finally:
            object.__setattr__(self, '_encoding', None)

    def call(self, features, training=False):
        encoding = self.encode(features, training=training)
        with self._encoded(encoding):
            outputs = super().call(features, training=training)
        outputs[SEQUENCE_LOSS] = self.sequence_loss(features, encoding, training=training)
        return outputs

    def sample_negatives(self, count: int):
        """``[count]`` int64 ids drawn uniformly, with replacement, from the indexed items 1…n."""
        return tf.random.uniform([count], 1, self.index_size + 1, dtype=tf.int64)

    def softmax_loss(self, outputs, targets, weights):
        """The mean over the positions with weight > 0 of the (sampled or full, ``loss``) softmax cross-entropy of
        ``outputs [M, d′]`` against the candidate embeddings of ``targets [M]``."""
        keep = weights > 0
        outputs, targets, weights = (tf.boolean_mask(t, keep) for t in (outputs, targets, weights))
        if self.hparams['loss'] == SOFTMAX:
            ids = self.indexed_ids()
            logits = tf.matmul(outputs, self.index_embeddings(training=True), transpose_b=True)       # [M, V]
            inside = tf.logical_or(self.indexed_mask(ids)[tf.newaxis, :],
                                   tf.equal(ids[tf.newaxis, :], targets[:, tf.newaxis]))
            logits = tf.where(inside, logits, NEG_INF)
            per_position = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        else:
            negative_ids = self.sample_negatives(self.hparams['num_negatives'])
            negatives = self.candidate_embedding(self.catalogue_features(negative_ids), training=True)
            positives = self.candidate_embedding(self.catalogue_features(targets), training=True)
            positive_logits = tf.reduce_sum(outputs * positives, axis=-1, keepdims=True)               # [M, 1]
            negative_logits = tf.matmul(outputs, negatives, transpose_b=True)                          # [M, N]
            hits = tf.equal(targets[:, tf.newaxis], negative_ids[tf.newaxis, :])
            negative_logits = tf.where(hits, NEG_INF, negative_logits)
            logits = tf.concat([positive_logits, negative_logits], axis=1)
            per_position = tf.reduce_logsumexp(logits, axis=1) - positive_logits[:, 0]
        return tf.reduce_sum(per_position * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

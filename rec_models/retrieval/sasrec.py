"""SASRec (Kang & McAuley, *Self-Attentive Sequential Recommendation*, ICDM 2018).

A causal transformer over the item history; the output at step t is the user's state after i_0 … i_t, and an item's
score is its product with the item's (shared) embedding:

    Ê_j = √d · M_{i_j} + P_j,   j < n                                   (§III-A; √d as in the released code)
    F⁰ = Dropout(Ê);  F^k = Block_k(F^{k−1}), k = 1…b                   (§III-B, C: pre-LayerNorm, causal attention)
        Block(x):  x' = x + Dropout(SA(LN(x))),  x'' = x' + Dropout(FFN(LN(x')))   (SA one head; FFN ReLU, d × d)
    F = LN(F^b)                                                           (the released code's last LayerNorm)
    r_{i,t} = ⟨F_t, M_i⟩                                                  (§III-D: the shared item embedding)

**Query and candidates.** u = F_{n−1}, the output at the last valid step; v_i = M_i (tied). A row with an empty
history has no step: its query is a learned vector u_∅ (Choice: SASRec has no query for it; the importers write no
such row, position 0 giving no example).

**Training** (§III-E): every step predicts the next item. A row is the history i_0 … i_{n−1} and its target y (the
importers' leave-one-out rows); the step t < n − 1 predicts i_{t+1} and the last valid step n − 1 predicts y: the
inputs are the history, the targets the history shifted left by one with y appended (o_t of the paper), so one pass
of the encoder gives all n predictions. An empty row's u_∅ predicts y. Losses (``loss``):

* ``bce``, the paper's (§III-E): −Σ_t [log σ(r_{o_t,t}) + log(1 − σ(r_{j_t,t}))], averaged over the steps as the
  released code does, one negative j_t a step drawn uniformly from the indexed items not in the row's history and
  target (the code's ``random_neq`` over the user's items; up to :data:`NEGATIVE_TRIES` draws, after which the step
  keeps no negative).
* ``sampled_softmax`` (default) and ``softmax``: the cross-entropy of :mod:`~rec_models.retrieval.sequence_encoder`.
  Choice: the default is the sampled softmax, after Klenitskiy & Vasilev (*Turning Dross Into Gold Loss: is BERT4Rec
  really better than SASRec?*, RecSys 2023: SASRec with the cross-entropy beats BERT4Rec, with the full softmax and
  with 3000 sampled negatives; one BCE negative is far worse) and Petrov & Macdonald (*gSASRec: Reducing
  Overconfidence in Sequential Recommendation Trained with Negative Sampling*, RecSys 2023: one negative with BCE
  makes SASRec overconfident; more negatives and a calibrated loss close the gap to BERT4Rec). The full softmax at
  every step costs B · L × V logits a batch (512 · 50 × 20k items = 2 GB of floats; 6.7 GB at the limit), so it is
  offered only up to :data:`~rec_models.retrieval.sequence_encoder.FULL_SOFTMAX_MAX_ITEMS` items (lower the batch
  near it); the sampled one costs B · L × N (N = ``num_negatives`` = 1000: 100 MB) whatever V.

Choices beyond those: ``all_positions=False`` trains on the row's target only. The importers write one row per
prefix of a user's sequence (the leave-one-out rows), so with every step trained a transition i_t → i_{t+1} is
trained once in each later row whose window holds it (up to L times; the paper's one sequence per user trains it
once); with the target only, each transition is trained once, as in the paper, for L times the encoder passes. The
attention has an output projection W^O (the paper's SA has none; a linear map of no consequence) and no dropout on
the attention weights (the code has it). Defaults are the paper's: b = 2, d = 50, one head, dropout 0.2 (ML-1m; 0.5 on
the sparse sets).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.registry import register
from rec_models.retrieval.sequence_encoder import (BCE, SAMPLED_SOFTMAX, SOFTMAX, SequenceEncoder,
                                                   SequenceRetrievalModel, gather_steps)

# Draws of a BCE negative a step before it gives up (a step keeps no negative when all hit the row's items).
NEGATIVE_TRIES = 4


@register('sasrec')
class SASRec(SequenceRetrievalModel):
    """Causal self-attention over the history; u = the last valid step's output, v = the item embedding (module
    docstring).

    Args:
        embedding_dim: d (the paper's 50).
        blocks: b (2).
        heads: h (1).
        dropout: the paper's 0.2 for ML-1m, 0.5 for the sparse sets.
        loss: ``sampled_softmax`` (default), ``softmax`` or ``bce`` (the paper's).
        num_negatives: N of ``sampled_softmax``.
        all_positions: train every step on its next item (else only the last step, on the row's target).
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    LOSSES = (SAMPLED_SOFTMAX, SOFTMAX, BCE)

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=50, blocks=2, heads=1, dropout=0.2,
                 loss=SAMPLED_SOFTMAX, num_negatives=1000, all_positions=True, **kwargs):
        super().__init__(inputs, frequencies=frequencies, embedding_dim=embedding_dim, blocks=blocks, heads=heads,
                         dropout=dropout, loss=loss, num_negatives=num_negatives, **kwargs)
        self.hparams.update(all_positions=bool(all_positions))
        self.item_embedding = self.add_weight(
            name='item_embedding/embeddings', shape=(self.num_items, embedding_dim),
            initializer=tf.keras.initializers.RandomNormal(stddev=embedding_dim ** -0.5))
        self.empty_query = self.add_weight(name='empty_query', shape=(embedding_dim,), initializer='random_normal')
        self.encoder = SequenceEncoder(self.max_length, blocks=blocks, heads=heads, dropout=dropout, causal=True,
                                       pre_norm=True, activation='relu', scale=embedding_dim ** 0.5, name='encoder')

    def candidate_embedding(self, item_features, training=False):
        return tf.gather(self.item_embedding, item_features[self.item_id.name])

    def encode(self, features, training=False):
        """``states [B, L, d]`` (F), ``lengths [B]``, ``query [B, d]`` (F_{n−1}, or u_∅ for an empty history)."""
        ids, lengths = self.item_history(features)
        states = self.encoder(tf.gather(self.item_embedding, ids), lengths, training=training)
        empty = tf.broadcast_to(self.empty_query[tf.newaxis, :], tf.shape(states[:, 0]))
        query = tf.where((lengths > 0)[:, tf.newaxis], gather_steps(states, lengths - 1), empty)
        return {'states': states, 'lengths': lengths, 'query': query, 'history': ids}

    def prediction_targets(self, features, encoding):
        """``(outputs [B, L + 1, d], targets [B, L + 1], weights [B, L + 1])``: step t < L predicts i_{t+1}, the last
        valid step the row's target y, and slot L (u_∅) predicts y for an empty history."""
        states, lengths, ids = encoding['states'], encoding['lengths'], encoding['history']
        target = self.target_ids(features)
        steps = tf.range(self.max_length)[tf.newaxis, :]
        last = steps == (lengths - 1)[:, tf.newaxis]
        following = tf.concat([ids[:, 1:], tf.zeros_like(ids[:, :1])], axis=1)
        targets = tf.where(last, target[:, tf.newaxis], following)
        trained = last if not self.hparams['all_positions'] else steps < lengths[:, tf.newaxis]
        outputs = tf.concat([states, tf.broadcast_to(self.empty_query, tf.shape(states[:, :1]))], axis=1)
        targets = tf.concat([targets, target[:, tf.newaxis]], axis=1)
        weights = tf.concat([tf.cast(trained, tf.float32), tf.cast(lengths == 0, tf.float32)[:, tf.newaxis]], axis=1)
        return outputs, targets, weights * self.row_weights(features)[:, tf.newaxis]

    def bce_negatives(self, seen, seen_valid, shape):
        """``(ids, kept)`` of ``shape`` ``[B, P]``: one uniform draw from the indexed items a step, not among the
        row's ``seen [B, S]`` ids where ``seen_valid``; ``kept`` is 0 where :data:`NEGATIVE_TRIES` draws all hit."""
        draws = tf.random.uniform(tf.concat([shape, [NEGATIVE_TRIES]], 0), 1, self.index_size + 1, dtype=tf.int64)
        hits = tf.logical_and(tf.equal(draws[..., tf.newaxis], seen[:, tf.newaxis, tf.newaxis, :]),
                              seen_valid[:, tf.newaxis, tf.newaxis, :])
        free = tf.logical_not(tf.reduce_any(hits, axis=-1))                                 # [B, P, tries]
        first = tf.argmax(tf.cast(free, tf.int32), axis=-1, output_type=tf.int32)
        return tf.gather(draws, first, axis=2, batch_dims=2), tf.cast(tf.reduce_any(free, axis=-1), tf.float32)

    def sequence_loss(self, features, encoding, training=False):
        outputs, targets, weights = self.prediction_targets(features, encoding)
        if self.hparams['loss'] != BCE:
            width = tf.shape(outputs)[-1]
            return self.softmax_loss(tf.reshape(outputs, [-1, width]), tf.reshape(targets, [-1]),
                                     tf.reshape(weights, [-1]))
        lengths = encoding['lengths']
        seen = tf.concat([encoding['history'], self.target_ids(features)[:, tf.newaxis]], axis=1)
        seen_valid = tf.concat([tf.sequence_mask(lengths, self.max_length),
                                tf.ones_like(lengths[:, tf.newaxis], tf.bool)], axis=1)
        negatives, kept = self.bce_negatives(seen, seen_valid, tf.shape(targets))
        positive_logits = tf.reduce_sum(outputs * tf.gather(self.item_embedding, targets), axis=-1)
        negative_logits = tf.reduce_sum(outputs * tf.gather(self.item_embedding, negatives), axis=-1)
        # −log σ(r⁺) − log(1 − σ(r⁻)) = softplus(−r⁺) + softplus(r⁻)
        per_step = tf.nn.softplus(-positive_logits) + kept * tf.nn.softplus(negative_logits)
        return tf.reduce_sum(per_step * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

"""Deep Match to Rank (Lyu et al., *Deep Match to Rank Model for Personalized Click-Through Rate Prediction*,
AAAI 2020).

An Embedding&MLP ranker whose input also carries two measures of user-to-item relevance:

* **User-to-Item network**: the user vector u = g(Σ_t α_t e_t) with
  α_t = softmax_t(zᵀ tanh(W_p p_t + W_e e_t + b)) — the weights do not see the target — and the relevance
  r = uᵀ v', where v' is the target item's embedding in a **separate** item table (only the User-to-Item network
  uses it). g is a dense layer to the width of v' with PReLU.
  Auxiliary network: u_{T−1}, the same user vector from the first T − 1 behaviours, must predict the T-th
  behaviour's item o among k sampled items by negative sampling:

      L_NS = −1/N Σ_i [log σ(u_{T−1}ᵀ v'_o) + Σ_{j=1}^{k} log σ(−u_{T−1}ᵀ v'_j)]

  and L = L_target + β · L_NS (``aux_weight`` β).
* **Item-to-Item network**: â_t = ẑᵀ tanh(Ŵ_c e_c + Ŵ_p p_t + Ŵ_e e_t + b̂) (additive attention with the
  target e_c), α̂_t = softmax_t(â_t); its outputs are the weighted sum û = Σ_t α̂_t e_t, the relevance
  r̂ = Σ_t â_t (the scores before the softmax) and the target embedding (in the item group of the MLP's input).
* MLP: [user profile, Σ_t [e_t, s_t] (sum-pooled behaviours), û, r, r̂, target item, context] through PReLU layers,
  the input batch-normalised first as in the authors' code (its ``build_fcn_net``, DIEN's, starts with a batch
  normalisation of the input). Without it the PReLU tower trains on inputs of very different scales (raw sums over
  50 behaviours, the unbounded r and r̂) and fell below the base model on the default synthetic data set; with it
  DMR beats the base model (measured: README, "The behaviour-sequence family").

Choices: e_t is the behaviour's keys (item, category, brand embeddings of
:class:`~rec_models.sequence.behavior.BehaviorModel`); the positional vector p_t is a learned embedding of the step's
recency rank (0 = the newest behaviour) concatenated with the step's side information (time-gap bucket and
behaviour type embeddings), so that the weights can follow recency in time; the pooled Σ_t and û sum the whole
behaviour [e_t, s_t], as DIN pools it (:mod:`rec_models.sequence.din`); u_{T−1} ranks the first T − 1 steps
anew (the newest of them is rank 0). The negatives of the auxiliary network are the T-th items of other examples
of the mini-batch (the batch rolled by 1 … k rows; one whose item equals the positive is dropped); examples with
fewer than two behaviours do not enter L_NS. The paper's α_t uses p_t and e_t; the issue describing this model says
"α from p_t only": the paper's equation is followed.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import AUX_LOSS, BehaviorModel, recency_ranks
from rec_models.layers import MLP, AdditiveAttentionScores, FieldEmbedding
from rec_models.layers.softmax import masked_softmax
from rec_models.registry import register


@register('dmr')
class DMR(BehaviorModel):
    """DMR. ``call(features, training=False) → {'logits', 'probabilities', 'relevance', 'attention_weights'}``
    (``relevance``: r ``[B]``; ``attention_weights``: the Item-to-Item α̂ ``[B, L]``), plus ``'aux_loss'`` in
    training when ``aux_weight`` > 0.

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the MLP's hidden layers.
        activation: the MLP's activation (the paper's PReLU).
        dropout: dropout rate after each hidden layer of the MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        attention_units: width of the hidden layer of both additive attentions.
        position_dim: width of the recency-rank embedding in p_t.
        match_dim: width of u and v'.
        negatives: k, sampled items per example in L_NS.
        aux_weight: β of L_NS (0: off).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(512, 256, 128), activation='prelu',
                 dropout=0.2, l2=1.0, attention_units=32, position_dim=8, match_dim=32, negatives=4, aux_weight=1.0,
                 **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.use_auxiliary_loss(aux_weight)
        if negatives < 1:
            raise ValueError(f'negatives must be ≥ 1, got {negatives}')
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'attention_units': attention_units, 'position_dim': position_dim,
                        'match_dim': match_dim, 'negatives': negatives, 'aux_weight': aux_weight}
        self.target_item = self.keyed[0].query
        self.positions = self.add_weight(name='position_embeddings', shape=(self.keyed[0].max_length, position_dim),
                                         initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        target = inputs[self.target_item]
        match_table = f'{target.table}_match'  # v': the separate item table, with the same mini-batch-aware L2
        self.match_embedding = FieldEmbedding(
            ModelInputs(fields=(dataclasses.replace(target, table=match_table, embedding_dim=match_dim),)), l2=l2,
            frequencies={match_table: (frequencies or {})[target.table]} if target.table in (frequencies or {})
            else None, name='target_item_vectors')
        self.user_to_item = AdditiveAttentionScores(attention_units, name='user_to_item')
        self.user_vector = tf.keras.Sequential([tf.keras.layers.Dense(match_dim), tf.keras.layers.PReLU()],
                                               name='g')
        self.item_to_item = AdditiveAttentionScores(attention_units, name='item_to_item')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, input_batch_norm=True,
                       name='mlp')

    def positional(self, side, lengths):
        """p_t = [recency-rank embedding, s_t] ``[B, L, d_p]`` for sequences of ``lengths`` valid steps."""
        ranked = tf.gather(self.positions, recency_ranks(lengths, self.keyed[0].max_length))
        return ranked if side is None else tf.concat([ranked, side], axis=-1)

    def user_vector_of(self, keys, side, lengths):
        """u = g(Σ_t α_t e_t) over the first ``lengths`` steps: ``[B, match_dim]``."""
        mask = tf.sequence_mask(lengths, self.keyed[0].max_length)
        weights = masked_softmax(self.user_to_item([self.positional(side, lengths), keys]), mask)
        return self.user_vector(tf.einsum('bl,bld->bd', weights, keys))

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        lengths = features[self.model_inputs.sequence_length]
        mask = tf.sequence_mask(lengths, self.keyed[0].max_length)
        keys, query, side = self.behaviours(embeddings)
        target_vector = self.match_embedding({self.target_item: features[self.target_item]},
                                             training=training)[self.target_item]                  # v'
        relevance = tf.reduce_sum(self.user_vector_of(keys, side, lengths) * target_vector, axis=-1)   # r = uᵀv'
        scores = self.item_to_item([query, self.positional(side, lengths), keys])                  # â_t
        weights = masked_softmax(scores, mask)
        valid = tf.cast(mask, tf.float32)
        behaviours = self.with_side(keys, side)                                                   # [e_t, s_t]
        interest = tf.concat([tf.einsum('bl,bld->bd', valid, behaviours),                           # Σ_t
                              tf.einsum('bl,bld->bd', weights, behaviours),                         # û
                              relevance[:, tf.newaxis],                                             # r
                              tf.reduce_sum(scores * valid, axis=1, keepdims=True)], axis=-1)       # r̂
        logits = tf.squeeze(self.mlp(self.mlp_input(features, embeddings, interest), training=training), axis=-1)
        outputs = click_outputs(logits, relevance=relevance, attention_weights=weights)
        if training and self.aux_weight:
            outputs[AUX_LOSS] = self.negative_sampling_loss(keys, side, lengths, features[self.keyed[0].name])
        return outputs

    def negative_sampling_loss(self, keys, side, lengths, item_ids):
        """L_NS: u_{T−1} against the T-th behaviour's item and k items of other examples (as in the paper)."""
        vectors = next(iter(self.match_embedding.tables.values()))
        previous = tf.maximum(lengths - 1, 0)
        user = self.user_vector_of(keys, side, previous)                                           # u_{T−1}
        last = tf.gather(item_ids, tf.cast(previous, tf.int32), axis=1, batch_dims=1)             # o: [B]
        counted = tf.cast(lengths >= 2, tf.float32)
        loss = tf.nn.softplus(-tf.reduce_sum(user * tf.gather(vectors, last), axis=-1))
        for shift in range(1, self.hparams['negatives'] + 1):
            negative = tf.roll(last, shift=shift, axis=0)
            usable = tf.cast(tf.not_equal(negative, last), tf.float32) * tf.roll(counted, shift=shift, axis=0)
            loss += usable * tf.nn.softplus(tf.reduce_sum(user * tf.gather(vectors, negative), axis=-1))
        return tf.reduce_sum(counted * loss) / tf.maximum(tf.reduce_sum(counted), 1.0)

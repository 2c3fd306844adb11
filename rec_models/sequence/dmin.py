"""Deep Multi-Interest Network (Xiao et al., *Deep Multi-Interest Network for Click-through Rate Prediction*,
CIKM 2020).

* Behavior refiner layer: multi-head self-attention over the behaviours x_b (H_R heads),
  head_h = Softmax(x_b W_h^Q (x_b W_h^K)ᵀ / √d_h) x_b W_h^V, Z = [head_1, …, head_{H_R}] W^O, with DIEN's auxiliary
  loss on the refined behaviours (z_t against the next behaviour e_{t+1} and a behaviour of another user:
  :func:`~rec_models.sequence.behavior.next_behaviour_loss`), L = L_target + α L_aux.
* Multi-interest extractor layer: H_E heads of self-attention over Z,
  head'_h = Softmax(Z W'_h^Q (Z W'_h^K)ᵀ / √d_model) Z W'_h^V, whose step j is I_jh; each head is pooled by a
  target-aware attention with position encoding, interest_h = Σ_j a(I_jh, x_t, p_j) I_jh, a being DIN's
  activation unit (:class:`~rec_models.layers.AttentionPooling`, one per head) with p_j as its side input.
* Output: an MLP over [user profile, interest_1, …, interest_{H_E}, target item, context].

Choices: x_b is each behaviour's keys and side information, [e_t, s_t], and Z has the width d of the keys, so that
z_t can be scored against e_{t+1}; each head I_·h also has width d (W'_h^V is d × d), as the activation unit
compares it with the target x_t. The refiner is **causal** (step t attends to steps ≤ t): with attention over the
whole sequence z_t would see e_{t+1}, and the auxiliary loss would teach it nothing. p_j is a learned embedding of
the step's recency rank (0 = newest) with the step's side information (time-gap bucket, behaviour type).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import AUX_LOSS, BehaviorModel, next_behaviour_loss, recency_ranks
from rec_models.layers import MLP, AttentionPooling, MultiHeadSelfAttention
from rec_models.registry import register


@register('dmin')
class DMIN(BehaviorModel):
    """DMIN. ``call(features, training=False) → {'logits', 'probabilities', 'interest_weights'}``
    (``interest_weights``: each head's activation weights, ``[B, H_E, L]``), plus ``'aux_loss'`` in training when
    ``aux_weight`` > 0.

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the MLP's hidden layers.
        attention_units: widths of each head's activation unit.
        activation: activation of the MLP and the activation units.
        dropout: dropout rate after each hidden layer of the MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        refiner_heads: H_R.
        interest_heads: H_E, the number of interests.
        position_dim: width of the recency-rank embedding in p_j.
        aux_weight: α of the auxiliary loss (0: off).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), attention_units=(80, 40),
                 activation='dice', dropout=0.2, l2=1.0, refiner_heads=4, interest_heads=4, position_dim=8,
                 aux_weight=1.0, **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.use_auxiliary_loss(aux_weight)
        self.hparams = {'hidden_units': tuple(hidden_units), 'attention_units': tuple(attention_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2, 'refiner_heads': refiner_heads,
                        'interest_heads': interest_heads, 'position_dim': position_dim, 'aux_weight': aux_weight}
        d = self.key_dim
        self.refiner = MultiHeadSelfAttention(refiner_heads, max(d // refiner_heads, 1), output_dim=d, causal=True,
                                              name='refiner')
        self.extractor = MultiHeadSelfAttention(interest_heads, d, scale=float(d) ** 0.5, name='extractor')
        self.positions = self.add_weight(name='position_embeddings', shape=(self.keyed[0].max_length, position_dim),
                                         initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        self.interest_pooling = [AttentionPooling(attention_units, activation=activation, name=f'interest_{h}')
                                 for h in range(interest_heads)]
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        lengths = features[self.model_inputs.sequence_length]
        mask = self.sequence_mask(features, self.keyed[0])
        keys, query, side = self.behaviours(embeddings)
        refined, _ = self.refiner(self.with_side(keys, side), mask)                                  # Z
        heads, _ = self.extractor(refined, mask, joined=False)                                       # I_·h
        positions = tf.gather(self.positions, recency_ranks(lengths, self.keyed[0].max_length))
        p = positions if side is None else tf.concat([positions, side], axis=-1)                     # p_j
        interests, weights = [], []
        for h, pooling in enumerate(self.interest_pooling):
            interest, weight = pooling({'keys': heads[:, h], 'query': query, 'side': p}, mask=mask,
                                       training=training)
            interests.append(interest[:, :self.key_dim])  # Σ_j w_j I_jh (the pooled p_j is not an interest)
            weights.append(weight)
        mlp_input = self.mlp_input(features, embeddings, tf.concat(interests, axis=-1))
        logits = tf.squeeze(self.mlp(mlp_input, training=training), axis=-1)
        outputs = click_outputs(logits, interest_weights=tf.stack(weights, axis=1))
        if training and self.aux_weight:
            outputs[AUX_LOSS] = next_behaviour_loss(refined, keys, mask, features[self.keyed[0].name])
        return outputs

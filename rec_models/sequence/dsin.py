"""Deep Session Interest Network (Feng et al., *Deep Session Interest Network for Click-Through Rate Prediction*,
IJCAI 2019).

* Session division layer (§4.1): Transform divides the behaviours at gaps of over 30 minutes and keeps the K newest
  sessions of at most T behaviours (the spec's ``behavior.sessions``; :mod:`feature_spec.sessions`):
  Q ∈ R^{K×T×D}, each behaviour x = [e, s] its keys and side information (as in
  :class:`~rec_models.sequence.behavior.BehaviorModel`).
* Session interest extractor (§4.2): bias encoding BE(k, t, c) = w^K_k + w^T_t + w^C_c (eq. 2), Q ← Q + BE; a
  transformer block per session, its weights shared by the sessions, I^Q_k = Transformer(Q_k), and
  I_k = Avg(I^Q_k) over the session's behaviours (eq. 3–6).
* Session interest interacting (§4.3): a bidirectional LSTM with peepholes over I_1 … I_K (oldest first),
  H_k = h→_k ⊕ h←_k (eq. 8–9; :class:`~rec_models.layers.BidirectionalLSTM`).
* Session interest activating (§4.4): the target X^I attends to both, a^I_k = softmax_k(I_k W^I X^I),
  U^I = Σ_k a^I_k I_k, and a^H_k = softmax_k(H_k W^H X^I), U^H = Σ_k a^H_k H_k (eq. 10–11;
  :class:`~rec_models.layers.BilinearAttention`), over the non-empty sessions.
* Output: an MLP over [user profile, U^I, U^H, target item, context] with Dice (DSIN's baselines' choice here, as
  DIN), the mini-batch-aware L2 and dropout.

X^I is the target item's embeddings that the behaviour keys are compared with (item, category, brand). Empty
sessions and padded behaviours are masked out everywhere and change no output; a user with no behaviour gets
U^I = U^H = 0.
"""

import tensorflow as tf

from feature_spec.model_inputs import SEQUENCE, ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import BehaviorModel
from rec_models.layers import MLP, BidirectionalLSTM, BilinearAttention, MaskedMeanPooling, TransformerBlock
from rec_models.registry import register


@register('dsin')
class DSIN(BehaviorModel):
    """DSIN. ``call(features, training=False) → {'logits', 'probabilities', 'session_attention',
    'interaction_attention'}`` (a^I and a^H, ``[B, K]``, 0 at empty sessions).

    Args:
        inputs: the model inputs; needs ``inputs.sessions`` (the spec's ``behavior.sessions``).
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the MLP's hidden layers.
        activation: the MLP's activation.
        dropout: dropout rate after each hidden layer of the MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        heads: attention heads of the session transformer.
        head_dim: width of each head.
        transformer_dropout: dropout inside the transformer.
        lstm_units: width of each direction of the Bi-LSTM (0: the width D of a behaviour).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='dice',
                 dropout=0.2, l2=1.0, heads=4, head_dim=16, transformer_dropout=0.1, lstm_units=0, **kwargs):
        if inputs.sessions is None:
            raise ValueError('DSIN needs the behaviours divided into sessions: give the feature spec a '
                             '"behavior.sessions" section (gap_seconds, max_sessions, max_length)')
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'heads': heads, 'head_dim': head_dim, 'transformer_dropout': transformer_dropout,
                        'lstm_units': lstm_units}
        sessions = inputs.sessions
        self.session_keyed = tuple(f for f in sessions.fields if f.query is not None)
        self.session_side = tuple(f for f in sessions.fields if f.query is None)
        self.max_sessions, self.session_steps = sessions.max_sessions, sessions.fields[0].max_length
        width = sum(f.embedding_dim for f in sessions.fields)
        self.bias_encoding = [self.add_weight(name=f'bias_encoding_{axis}', shape=(size,), initializer='zeros')
                              for axis, size in (('k', self.max_sessions), ('t', self.session_steps), ('c', width))]
        self.transformer = TransformerBlock(heads, head_dim, dropout=transformer_dropout, activation='relu',
                                            name='session_transformer')
        self.session_pooling = MaskedMeanPooling(name='session_average')
        self.interacting = BidirectionalLSTM(lstm_units or width, name='session_interacting')
        self.session_activation = BilinearAttention(name='session_activation')
        self.interaction_activation = BilinearAttention(name='interaction_activation')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')

    def embedded_inputs(self, inputs: ModelInputs) -> ModelInputs:
        """The non-sequence inputs and the sessions (the flat sequences are not read)."""
        return ModelInputs(fields=tuple(f for f in inputs.fields if f.kind != SEQUENCE) + inputs.sessions.fields)

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        k, t = self.max_sessions, self.session_steps
        behaviours = tf.concat([embeddings[f.name] for f in self.session_keyed + self.session_side], axis=-1)
        queries = tf.reshape(behaviours, [-1, k, t, behaviours.shape[-1]])                    # Q: [B, K, T, D]
        w_k, w_t, w_c = self.bias_encoding
        queries += w_k[:, tf.newaxis, tf.newaxis] + w_t[tf.newaxis, :, tf.newaxis] + w_c       # + BE(k, t, c)
        lengths = features[self.model_inputs.sessions.length_feature]                         # [B, K]
        step_mask = tf.sequence_mask(tf.reshape(lengths, [-1]), t)                             # [B·K, T]
        extracted, _ = self.transformer(tf.reshape(queries, [-1, t, queries.shape[-1]]), step_mask,
                                        training=training)
        interests = tf.reshape(self.session_pooling(extracted, mask=step_mask), [-1, k, queries.shape[-1]])  # I_k
        session_mask = lengths > 0
        interactions = self.interacting(interests, session_mask)                               # H_k
        target = tf.concat([embeddings[f.query] for f in self.session_keyed], axis=-1)         # X^I
        session_interest, session_weights = self.session_activation(
            {'states': interests, 'target': target}, session_mask)                             # U^I, a^I
        interaction_interest, interaction_weights = self.interaction_activation(
            {'states': interactions, 'target': target}, session_mask)                          # U^H, a^H
        interest = tf.concat([session_interest, interaction_interest], axis=-1)
        logits = tf.squeeze(self.mlp(self.mlp_input(features, embeddings, interest), training=training), axis=-1)
        return click_outputs(logits, session_attention=session_weights, interaction_attention=interaction_weights)

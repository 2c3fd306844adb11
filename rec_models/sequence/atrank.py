"""ATRank (Zhou et al., *ATRank: An Attention-Based User Behavior Modeling Framework for Recommendation*, AAAI 2018).

A user is the set of behaviours (a_j, o_j, t_j) (action, object, time), of several kinds, grouped by the kind of
their target entity (§3.1), not by action: here the **item** behaviours (the behaviour sequences: object = item,
category, brand; action = the behaviour type; time = the time-gap bucket) and the **query** behaviours (the spec's
auxiliary group ``search``: object = the query; time = its own time-gap bucket).

* Behaviour embedding (eq. 1): u_ij = emb_i(o_j) + lookup^t_i(t_j) + lookup^a_i(a_j), the time embedding of each
  group its own (the spec gives the two time gaps separate tables). Here the parts are concatenated and the
  group's projection below follows, which is the same model: a linear map of the concatenation is the sum of the
  parts each mapped.
* Latent space (eq. 2): S = concat_i(F_i(u_bgi)) along the behaviours, F_i a linear projection of group i into one
  space of width ``latent_dim`` (the groups have different widths).
* Self-attention in several semantic spaces (eq. 3–4): K = ``spaces`` projections S_k of S, A_k = softmax(S_k
  K_kᵀ / √d_h) over the valid behaviours, C_k = A_k V_k, the spaces joined by W^O, then the position-wise
  feed-forward layer with residuals and LayerNorm (:class:`~rec_models.layers.TransformerBlock`, heads = spaces).
  Choice: keys and values are projected per space as in the authors' released multi-head attention; the paper's
  text keeps S as the values.
* Downstream (eq. 5): the target item v_t (its item, category and brand) attends to the behaviours, e_u = Σ_j
  softmax_j(C_j W v_t) C_j (:class:`~rec_models.layers.BilinearAttention`), and the click logit is an MLP over
  [user profile, e_u, target item, context] (DIN's tower here, so that the family differs only in how it reads
  behaviours).

Behaviours are not ordered across groups; the time-gap embeddings carry recency. Padded behaviours of either group
are never attended to and change no output.
"""

import tensorflow as tf

from feature_spec.model_inputs import SEQUENCE, ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import BehaviorModel
from rec_models.layers import MLP, BilinearAttention, TransformerBlock
from rec_models.registry import register

QUERY_GROUP = 'search'


@register('atrank')
class ATRank(BehaviorModel):
    """ATRank. ``call(features, training=False) → {'logits', 'probabilities', 'attention_weights'}``
    (``attention_weights``: the target's ``[B, L_items + L_queries]`` over the item behaviours, then the queries).

    Args:
        inputs: the model inputs; needs the behaviour sequences and the auxiliary group ``search`` with a query
            sequence.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        latent_dim: width of the latent space S.
        spaces: K, the semantic spaces (attention heads).
        space_dim: width of each semantic space.
        transformer_dropout: dropout inside the self-attention block.
        hidden_units: widths of the MLP's hidden layers.
        activation: the MLP's activation.
        dropout: dropout rate after each hidden layer of the MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, latent_dim=64, spaces=4, space_dim=16,
                 transformer_dropout=0.1, hidden_units=(200, 80), activation='dice', dropout=0.2, l2=1.0, **kwargs):
        queries = self.auxiliary_group(inputs, QUERY_GROUP, 'ATRank', 'the query behaviours')
        if not any(f.kind == SEQUENCE for f in queries.fields):
            raise ValueError(f'ATRank reads the query behaviours from the sequences of auxiliary.{QUERY_GROUP}; '
                             'the group has none')
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.queries = queries
        self.hparams = {'latent_dim': latent_dim, 'spaces': spaces, 'space_dim': space_dim,
                        'transformer_dropout': transformer_dropout, 'hidden_units': tuple(hidden_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2}
        self.item_projection = tf.keras.layers.Dense(latent_dim, name='item_projection')          # F_items
        self.query_projection = tf.keras.layers.Dense(latent_dim, name='query_projection')        # F_queries
        self.self_attention = TransformerBlock(spaces, space_dim, dropout=transformer_dropout, activation='relu',
                                               name='self_attention')
        self.downstream = BilinearAttention(name='downstream_attention')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')

    def embedded_inputs(self, inputs: ModelInputs) -> ModelInputs:
        return self.with_auxiliary(inputs, [inputs.auxiliary_group(QUERY_GROUP)], kind=SEQUENCE)

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        keys, target, side = self.behaviours(embeddings)
        items = self.with_side(keys, side)                                                   # [o_j, a_j, t_j]
        queries, query_mask = self.auxiliary_steps(features, embeddings, self.queries)
        latent = tf.concat([self.item_projection(items), self.query_projection(queries)], axis=1)   # S
        mask = tf.concat([self.sequence_mask(features, self.keyed[0]), query_mask], axis=1)
        attended, _ = self.self_attention(latent, mask, training=training)                    # C
        interest, weights = self.downstream({'states': attended, 'target': target}, mask)     # e_u
        logits = tf.squeeze(self.mlp(self.mlp_input(features, embeddings, interest), training=training), axis=-1)
        return click_outputs(logits, attention_weights=weights)

"""Deep User Perception Network (Ni et al., *Perceive Your Users in Depth: Learning Universal User Representations
from Multiple E-commerce Tasks*, KDD 2018), with its CTR head and, as ``dupn_multitask``, the other heads the data can
label, all on one user representation.

* Behaviour (§3.1–3.2): x_i = [item_i, property_i], the item's side information (item, category, brand: the keys of
  :class:`~rec_models.sequence.behavior.BehaviorModel`) and the behaviour's properties (time-gap bucket and type: the
  side information). The paper's third property, the scene, has no counterpart in a log of one scene.
* LSTM (§3.3): h_i over x_1 … x_N, oldest first, with the paper's peephole connections
  (:class:`~rec_models.layers.PeepholeLSTM`); padded steps keep the state.
* Attention (§3.4): α_i = softmax_i(MLP([h_i, property_i, q, u])) over the valid behaviours, driven by the user u
  (the profile's embeddings) and the query q (the request's query, the spec's auxiliary group ``search``; the
  "no query" id outside searches); the attention output is Σ_i α_i h_i, and the user representation is
  rep = [Σ_i α_i h_i, u].
* CTR head (§3.5.1): p = sigmoid(MLP([rep, target item, context])) on the log loss. Choice: DIN's tower (200-80,
  Dice, dropout) and the mini-batch-aware L2, so that the family differs only in how it reads behaviours.
* Other heads (§2.5, ``heads``): the paper trains one representation on CTR, learning to rank, price preference,
  fashion-icon following and shop preference. This log labels none of the last three; it labels the conversion and
  the satisfaction that follow a click, so ``dupn_multitask`` adds those (the spec's ``conversion`` and
  ``satisfaction`` roles), each its own tower over [rep, target item, context] with its log loss, sharing the
  behaviour LSTM, the attention and the embeddings; the losses are summed (the paper's multi-task training).

The user representation does not depend on the candidate, which is the point of the paper's model split (§4.2):
``rank(context, candidates)`` computes it once per request and only the head runs per candidate.
"""

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, USER, ModelInputs
from rec_models.base import click_outputs
from rec_models.layers import MLP, PeepholeLSTM
from rec_models.layers.softmax import masked_softmax
from rec_models.registry import register
from rec_models.sequence.behavior import RequestOnceModel
from rec_models.tasks import BinaryTask, Head

QUERY_GROUP = 'search'


@register('dupn_multitask', heads=('click', 'conversion', 'satisfaction'))
@register('dupn')
class DUPN(RequestOnceModel):
    """DUPN. ``call(features, training=False) → {'logits', 'probabilities', 'attention_weights'}`` (α, ``[B, L]``,
    0 at padded steps).

    Args:
        inputs: the model inputs; needs the behaviour sequences and the auxiliary group ``search`` with the
            request's query (a categorical field).
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        lstm_units: width of h_i.
        attention_units: widths of the attention MLP's hidden layers (ReLU).
        hidden_units: widths of the CTR head's hidden layers.
        activation: the CTR head's activation.
        dropout: dropout rate after each hidden layer of the CTR head.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        heads: the label roles of the heads, the click first; beyond one, each is a served head of its name.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, lstm_units=64, attention_units=(64,),
                 hidden_units=(200, 80), activation='dice', dropout=0.2, l2=1.0, heads=('click',), **kwargs):
        search = self.auxiliary_group(inputs, QUERY_GROUP, 'DUPN', "the request's query")
        query = [f for f in search.fields if f.kind == CATEGORICAL]
        if len(query) != 1:
            raise ValueError(f"DUPN reads the request's query from the one categorical field of "
                             f'auxiliary.{QUERY_GROUP}; it has {[f.name for f in query]}')
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.query = query[0]
        heads = tuple(heads)
        self.check_hparams({'heads': heads})
        self.hparams = {'lstm_units': lstm_units, 'attention_units': tuple(attention_units),
                        'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout, 'l2': l2,
                        'heads': heads}
        self.lstm = PeepholeLSTM(lstm_units, name='lstm')
        self.attention = MLP(attention_units, activation='relu', output_units=1, name='attention')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')
        self.other_heads = [MLP(hidden_units, activation=activation, dropout=dropout, output_units=1,
                                name=f'{role}_head') for role in heads[1:]]
        if len(heads) > 1:
            self.set_tasks(*(BinaryTask(inputs.label_for(role), head=role, auc_thresholds=self.auc_thresholds)
                             for role in heads))

    @classmethod
    def check_hparams(cls, hparams):
        heads = tuple(hparams.get('heads', ('click',)))
        if not heads or heads[0] != 'click' or len(set(heads)) != len(heads):
            raise ValueError(f'heads must be distinct label roles, the click first; got {heads}')

    @classmethod
    def served_heads(cls, hparams=None):
        heads = tuple((hparams or {}).get('heads', ('click',)))
        if len(heads) == 1:
            return cls.HEADS
        return tuple(Head(role, role, counterfactual='relevance' if role == 'click' else None) for role in heads)

    def embedded_inputs(self, inputs: ModelInputs) -> ModelInputs:
        return self.with_auxiliary(inputs, [inputs.auxiliary_group(QUERY_GROUP)], kind=CATEGORICAL)

    def _score(self, features, training, rows=None):
        embeddings = self.embedding(features, training=training)
        mask = self.sequence_mask(features, self.keyed[0])
        keys, _, side = self.behaviours(embeddings)
        states = self.lstm(self.with_side(keys, side), mask)                                      # h_i
        user = tf.concat(self.group_parts(features, embeddings, USER), axis=-1)                   # u
        drivers = tf.concat([embeddings[self.query.name], user], axis=-1)                         # [q, u]
        steps = tf.shape(states)[1]
        parts = [states] + ([] if side is None else [side]) + [
            tf.broadcast_to(drivers[:, tf.newaxis], tf.stack([tf.shape(states)[0], steps, drivers.shape[-1]]))]
        scores = tf.squeeze(self.attention(tf.concat(parts, axis=-1), training=training), axis=-1)
        weights = masked_softmax(scores, mask)                                                    # α_i
        interest = tf.einsum('bl,blh->bh', weights, states)
        mlp_input = self.mlp_input(features, embeddings, interest, rows=rows)
        logits = tf.squeeze(self.mlp(mlp_input, training=training), axis=-1)
        if rows is not None:
            weights = tf.broadcast_to(weights, tf.stack([rows, tf.shape(weights)[1]]))
        if not self.other_heads:
            return click_outputs(logits, attention_weights=weights)
        outputs = {'click_logits': logits, 'attention_weights': weights}
        for role, head in zip(self.hparams['heads'][1:], self.other_heads):
            outputs[f'{role}_logits'] = tf.squeeze(head(mlp_input, training=training), axis=-1)
        return self.with_heads(outputs)

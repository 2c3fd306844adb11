"""Deep Spatio-Temporal Network (Ouyang et al., *Deep Spatio-Temporal Neural Networks for Click-Through Rate
Prediction*, KDD 2019).

The target ad is scored together with three kinds of auxiliary ads (§3.1):

* context ads x_c: the ads shown above it on the same page (the spec's auxiliary group ``page_context``);
* clicked ads x_l: the user's behaviours (the behaviour sequences: keys and side information, as in
  :class:`~rec_models.sequence.behavior.BehaviorModel`);
* unclicked ads x_u: the user's earlier impressions that were not clicked (auxiliary group ``unclicked``).

Embedding layer (§3.1): each ad is the concatenation of its fields' embeddings (tables shared with the target's);
the target vector x_t concatenates every non-sequence field: user, target ad, context (DSTN's "target ad
information"). Each kind is reduced to one vector x̃ by the variant's aggregation, one set of weights per kind:

* ``'pooling'`` (§3.2, eq. 1): x̃ = Σ_i x_i;
* ``'self_attention'`` (§3.3, eq. 4–5): x̃ = Σ_i α_i x_i, α = softmax(f(x_i));
* ``'interactive'`` (§3.4, eq. 7, the paper's best): x̃ = Σ_i α_i x_i, α_i = exp(hᵀ ReLU(W_t x_t + W_a x_i + b_1) +
  b_2), unnormalised and dependent on the target (:mod:`rec_models.layers.auxiliary_attention`).

Output (eq. 2–3): p = sigmoid(MLP([x_t, x̃_c, x̃_l, x̃_u])), trained on the log loss (eq. 6). Choices: the MLP is
DIN's (200-80, Dice, dropout 0.2) with the mini-batch-aware L2 on the embeddings, so that the family differs only
in how it reads behaviours; the search query, which DSTN's x_t has in search ads, is not used (it belongs to
ATRank and DUPN here). At ``rank``, the context ads come with the request: they are the page above the slot being
filled (§4: the slots are filled one after the other).
"""

import tensorflow as tf

from feature_spec.model_inputs import GROUPS, ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import BehaviorModel
from rec_models.layers import MLP, InteractiveAttentionPooling, MaskedSumPooling, SelfAttentivePooling
from rec_models.registry import register

CONTEXT_GROUP = 'page_context'
UNCLICKED_GROUP = 'unclicked'
AGGREGATIONS = ('pooling', 'self_attention', 'interactive')
KINDS = ('context', 'clicked', 'unclicked')


@register('dstn_self_attention', aggregation='self_attention')
@register('dstn_pooling', aggregation='pooling')
@register('dstn')
class DSTN(BehaviorModel):
    """DSTN. ``call(features, training=False) → {'logits', 'probabilities', 'context_weights', 'clicked_weights',
    'unclicked_weights'}`` (α of each kind, ``[B, n]``, 0 at padded steps; with ``aggregation='pooling'`` the
    indicator of the valid steps).

    Args:
        inputs: the model inputs; needs the behaviour sequences and the auxiliary groups ``page_context`` and
            ``unclicked``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        aggregation: ``'interactive'``, ``'self_attention'`` or ``'pooling'``.
        attention_units: width of the attention's hidden layer (f's for self-attention).
        hidden_units: widths of the MLP's hidden layers.
        activation: the MLP's activation.
        dropout: dropout rate after each hidden layer of the MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, aggregation='interactive', attention_units=64,
                 hidden_units=(200, 80), activation='dice', dropout=0.2, l2=1.0, **kwargs):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f'unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}')
        groups = {'context': self.auxiliary_group(inputs, CONTEXT_GROUP, 'DSTN', 'the context ads'),
                  'unclicked': self.auxiliary_group(inputs, UNCLICKED_GROUP, 'DSTN', 'the unclicked ads')}
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.groups = groups
        self.hparams = {'aggregation': aggregation, 'attention_units': attention_units,
                        'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout, 'l2': l2}
        if aggregation == 'pooling':
            self.aggregate = {kind: MaskedSumPooling(name=f'{kind}_pooling') for kind in KINDS}
        elif aggregation == 'self_attention':
            self.aggregate = {kind: SelfAttentivePooling((attention_units,), name=f'{kind}_attention')
                              for kind in KINDS}
        else:
            self.aggregate = {kind: InteractiveAttentionPooling(attention_units, name=f'{kind}_attention')
                              for kind in KINDS}
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')

    def embedded_inputs(self, inputs: ModelInputs) -> ModelInputs:
        return self.with_auxiliary(inputs, [inputs.auxiliary_group(g) for g in (CONTEXT_GROUP, UNCLICKED_GROUP)])

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        keys, _, side = self.behaviours(embeddings)
        ads = {'clicked': (self.with_side(keys, side),
                           self.sequence_mask(features, self.keyed[0]))}
        for kind, group in self.groups.items():
            ads[kind] = self.auxiliary_steps(features, embeddings, group)
        target = tf.concat([part for group in GROUPS for part in self.group_parts(features, embeddings, group)],
                           axis=-1)                                                                  # x_t
        pooled, outputs = [], {}
        for kind in KINDS:
            steps, mask = ads[kind]
            if self.hparams['aggregation'] == 'pooling':
                pooled.append(self.aggregate[kind](steps, mask=mask))
                outputs[f'{kind}_weights'] = tf.cast(mask, tf.float32)
            elif self.hparams['aggregation'] == 'self_attention':
                vector, outputs[f'{kind}_weights'] = self.aggregate[kind](steps, mask, training=training)
                pooled.append(vector)
            else:
                vector, outputs[f'{kind}_weights'] = self.aggregate[kind]({'steps': steps, 'target': target}, mask)
                pooled.append(vector)
        logits = tf.squeeze(self.mlp(tf.concat([target] + pooled, axis=-1), training=training), axis=-1)
        return click_outputs(logits, **outputs)

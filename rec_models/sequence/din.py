"""Deep Interest Network (Zhou et al., *Deep Interest Network for Click-Through Rate Prediction*, KDD 2018).

Embedding&MLP with a candidate-dependent user interest (§4.3):

    v_U(A) = Σ_j a(e_j, v_A) · [e_j, s_j]           (local activation unit, no softmax)
    p = sigmoid(MLP_Dice([user profile, v_U(A), candidate A, context]))

v_A (the query), e_j (the keys) and s_j (side information: time-gap bucket, behaviour type) are those of
:class:`~rec_models.sequence.behavior.BehaviorModel`; s_j is an input of the activation unit, and pooled with the
keys as part of the behaviour.

Training uses the mini-batch-aware L2 on the embeddings (§5.1) and Dice (§5.2) in both MLPs. With
``pooling='sum'`` the activation unit is replaced by masked sum pooling, v_U = Σ_j [e_j, s_j] (``'mean'``: divided
by the number of valid steps): the Embedding&MLP base model of §4.2, registered as ``base_model``, the reference
of the behaviour-sequence models. It sees everything DIN sees and differs only in how behaviours are weighted.

``rank(context, candidates)`` scores one user's N candidates with the behaviour embeddings and the activation
unit's per-behaviour part computed once (the user rows have batch 1 and broadcast against the N candidates). Both
cut the behaviour sequences to the batch's longest history first (``trim_padding``, exact): a request's user has one
length, so no padded step is computed in serving. In training, the activation unit runs on the valid steps only
(``AttentionPooling(packed=True)``, exact too), so a step costs what its behaviours cost, not B × max_length. Choice:
inference keeps the padded form (after the cut): a request is one user, whose steps the cut already leaves all valid,
and the packing's gathers would only add to it.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import RequestOnceModel
from rec_models.layers import MLP, AttentionPooling, MaskedMeanPooling, MaskedSumPooling
from rec_models.registry import register

POOLINGS = ('attention', 'sum', 'mean')


@register('base_model', pooling='sum')
@register('din')
class DIN(RequestOnceModel):
    """DIN. ``call(features, training=False) → {'logits', 'probabilities', 'attention_weights'}``;
    ``attention_weights`` (``[B, L]``, 0 at padded steps) only with ``pooling='attention'``.

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the main MLP's hidden layers.
        attention_units: widths of the activation unit's hidden layers.
        activation: activation of both MLPs (``'dice'``, ``'prelu'`` or ``'relu'``).
        dropout: dropout rate after each hidden layer of the main MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off). The defaults of ``l2`` and ``dropout`` were
            chosen by measurement on the default synthetic data set (README, "Results"): without them DIN
            overfits its id embeddings after one epoch.
        pooling: ``'attention'`` (DIN), ``'sum'`` or ``'mean'`` (the base model's pooling).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), attention_units=(80, 40),
                 activation='dice', dropout=0.2, l2=1.0, pooling='attention', **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f'unknown pooling {pooling!r}; expected one of {POOLINGS}')
        self.hparams = {'hidden_units': tuple(hidden_units), 'attention_units': tuple(attention_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2, 'pooling': pooling}
        if pooling == 'attention':
            self.pooling = AttentionPooling(attention_units, activation=activation, name='attention')
        elif pooling == 'sum':
            self.pooling = MaskedSumPooling(name='sum_pooling')
        else:
            self.pooling = MaskedMeanPooling(name='mean_pooling')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')
        self.packed_attention = True   # in training, the activation unit over the valid steps only

    def _score(self, features, training, rows=None):
        """The outputs for ``features``; with ``rows`` (``rank``), the user and context features have batch 1 and
        are broadcast to the ``rows`` candidates."""
        features, mask = self.trim_padding(features)
        embeddings = self.embedding(features, training=training)
        keys, query, side = self.behaviours(embeddings)
        extra = {}
        if self.hparams['pooling'] == 'attention':
            attention_inputs = {'keys': keys, 'query': query}
            if side is not None:
                attention_inputs['side'] = side
            interest, weights = self.pooling(attention_inputs, mask=mask, training=training,
                                              packed=self.packed_attention and bool(training))
            extra['attention_weights'] = self.pad_steps(weights)
        else:
            interest = self.pooling(self.with_side(keys, side), mask=mask)
        mlp_input = self.mlp_input(features, embeddings, interest, rows=rows)
        logits = tf.squeeze(self.mlp(mlp_input, training=training), axis=-1)
        return click_outputs(logits, **extra)

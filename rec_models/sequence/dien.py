"""Deep Interest Evolution Network (Zhou et al., *Deep Interest Evolution Network for Click-Through Rate
Prediction*, AAAI 2019).

* Interest extractor (§4.2): a GRU over the behaviours, i_t = [e_t, s_t] (the behaviour's keys and side
  information of :class:`~rec_models.sequence.behavior.BehaviorModel`; the time gap and behaviour type are our
  documented extension, as in DIN), with hidden width d = the width of e_t, so that h_t can be scored against a behaviour.
  The **auxiliary loss** (eq. 1, :func:`~rec_models.sequence.behavior.next_behaviour_loss`, where its negative sampling
  is documented) supervises each h_t with the next behaviour e_{t+1} as the positive and a behaviour the user did
  not take, ê_{t+1}, as the negative.
* Interest evolving layer (§4.3): a_t = softmax(h_t W e_a) over the valid steps, and AUGRU (eq. 8) — or AIGRU,
  AGRU (``evolution``) — over h_1 … h_T; h'_T is the user's interest
  (:class:`~rec_models.layers.InterestEvolution`).
* Output: an MLP over [user profile, h'_T, target ad, context] (the paper's concatenation) with Dice, the
  mini-batch-aware L2 on the embeddings and dropout, as DIN here.

The loss is L = L_target + α · L_aux (eq. 9, ``aux_weight`` α); L_aux is computed in training only and reported
as the ``aux_loss`` metric. Padded steps change no output: the GRUs carry their state over them and the attention
gives them weight 0.

``rank(context, candidates)`` runs the embeddings and the interest extractor once per request (batch 1); the
attention and the evolving GRU depend on the candidate and run for each of the N candidates.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import AUX_LOSS, RequestOnceModel, next_behaviour_loss
from rec_models.layers import MLP, InterestEvolution, InterestGRU
from rec_models.registry import register


@register('dien_agru', evolution='agru')
@register('dien_aigru', evolution='aigru')
@register('dien')
class DIEN(RequestOnceModel):
    """DIEN. ``call(features, training=False) → {'logits', 'probabilities', 'attention_weights'}``, plus
    ``'aux_loss'`` (a scalar) in training when ``aux_weight`` > 0.

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the final MLP's hidden layers.
        activation: the final MLP's activation (``'dice'``, ``'prelu'`` or ``'relu'``).
        dropout: dropout rate after each hidden layer of the final MLP.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        evolution: the evolving layer's GRU: ``'augru'`` (the paper's), ``'aigru'`` or ``'agru'``.
        aux_weight: α of the auxiliary loss (0: off).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='dice',
                 dropout=0.2, l2=1.0, evolution='augru', aux_weight=1.0, **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.use_auxiliary_loss(aux_weight)
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'evolution': evolution, 'aux_weight': aux_weight}
        self.extractor = InterestGRU(self.key_dim, 'gru', name='extractor')
        self.evolution = InterestEvolution(self.key_dim, evolution, name='evolution')
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')

    def _score(self, features, training, rows=None):
        features, mask = self.trim_padding(features)            # the GRUs skip the steps every row pads
        embeddings = self.embedding(features, training=training)
        keys, query, side = self.behaviours(embeddings)
        steps = self.with_side(keys, side)
        states, _ = self.extractor(steps, mask)                                         # h_t: [B, L, d]
        interest, weights = self.evolution({'states': states, 'target': query}, mask)   # h'_T, a_t
        logits = tf.squeeze(self.mlp(self.mlp_input(features, embeddings, interest, rows=rows), training=training),
                            axis=-1)
        outputs = click_outputs(logits, attention_weights=self.pad_steps(weights))
        if training and self.aux_weight:
            outputs[AUX_LOSS] = next_behaviour_loss(states, keys, mask, features[self.keyed[0].name])
        return outputs

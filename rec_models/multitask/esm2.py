"""ESM2 (Wen et al., *Entire Space Multi-Task Model via Post-Click Behavior Decomposition for Conversion Rate
Prediction*, SIGIR 2020).

After a click the user takes a *D-Action* (the spec's ``d_action`` role: cart or wish list) or another action (an
*O-Action*), and may purchase after either. Four towers over one shared input (the family's bottom):

    Y1 = p(click),   Y2 = p(D-Action | click),   Y3 = p(buy | D-Action),   Y4 = p(buy | O-Action)
    pCVR = Y2 · Y3 + (1 − Y2) · Y4,     pCTAVR = Y1 · Y2,     pCTCVR = Y1 · pCVR

    L = w1 · L(click, Y1) + w2 · L(click ∧ D-Action, pCTAVR) + w3 · L(click ∧ buy, pCTCVR)

three log losses over all impressions. (A known public implementation writes pCVR = (1 − Y2·Y3) · Y4: a test holds
this model to the equation above.) Served heads: ``ctr`` (primary), ``cvr``, ``ctavr``, ``ctcvr``; the towers'
probabilities are outputs too (``d_action``, ``buy_after_d``, ``buy_after_o``).
"""

import tensorflow as tf

from feature_spec.model_inputs import CLICK_ROLE, ModelInputs
from rec_models.multitask.base import MultiTaskModel
from rec_models.multitask.esmm import CONVERSION_ROLE, CVR_HEAD
from rec_models.registry import register
from rec_models.tasks import BinaryTask, Head, ProductTask

D_ACTION_ROLE = 'd_action'
TOWERS = ('ctr', 'd_action', 'buy_after_d', 'buy_after_o')


@register('esm2')
class ESM2(MultiTaskModel):
    """ESM2. ``call → {'ctr', 'd_action', 'buy_after_d', 'buy_after_o' (Y1 … Y4) and their logits, 'cvr', 'ctavr',
    'ctcvr', 'probabilities' (Y1), 'logits'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        tower_units, activation, dropout: each tower's MLP.
        ctr_weight, ctavr_weight, ctcvr_weight: w1, w2, w3.
    """

    HEADS = (Head('ctr'), CVR_HEAD, Head('ctavr', D_ACTION_ROLE, counterfactual=None),
             Head('ctcvr', CONVERSION_ROLE, counterfactual=None))

    def __init__(self, inputs: ModelInputs, frequencies=None, tower_units=(200, 80), activation='relu', dropout=0.2,
                 ctr_weight=1.0, ctavr_weight=1.0, ctcvr_weight=1.0, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {**self.bottom_hparams, 'tower_units': tuple(tower_units), 'activation': activation,
                        'dropout': dropout, 'ctr_weight': ctr_weight, 'ctavr_weight': ctavr_weight,
                        'ctcvr_weight': ctcvr_weight}
        self.towers = {name: self.tower(tower_units, activation, dropout, f'{name}_tower') for name in TOWERS}
        click, conversion = inputs.label_for(CLICK_ROLE), inputs.label_for(CONVERSION_ROLE)
        thresholds = self.auc_thresholds
        self.set_tasks(
            BinaryTask(click, head='ctr', weight=ctr_weight, auc_thresholds=thresholds),
            ProductTask(inputs.label_for(D_ACTION_ROLE), ('ctr', 'd_action'), head='ctavr', weight=ctavr_weight,
                        auc_thresholds=thresholds),
            ProductTask(conversion, ('ctr', 'cvr'), head='ctcvr', weight=ctcvr_weight, auc_thresholds=thresholds),
            BinaryTask(conversion, head='cvr', from_logits=False, condition=click, weight=0.0,
                       auc_thresholds=thresholds))

    @staticmethod
    def conversion_rate(d_action, buy_after_d, buy_after_o):
        """pCVR = Y2 · Y3 + (1 − Y2) · Y4."""
        return d_action * buy_after_d + (1.0 - d_action) * buy_after_o

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        for name, tower in self.towers.items():
            logits = tf.squeeze(tower(shared, training=training), axis=-1)
            outputs[f'{name}_logits'] = logits
            outputs[name] = tf.sigmoid(logits)
        outputs['cvr'] = self.conversion_rate(outputs['d_action'], outputs['buy_after_d'], outputs['buy_after_o'])
        return self.with_heads(outputs)

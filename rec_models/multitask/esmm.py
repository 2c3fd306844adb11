"""ESMM (Ma et al., *Entire Space Multi-Task Model: An Effective Approach for Estimating Post-Click Conversion
Rate*, SIGIR 2018), and the CVR model it is compared with.

Two towers over one shared input (the family's bottom: shared embeddings), pCTR = σ(z_ctr) and pCVR = σ(z_cvr), and

    pCTCVR = pCTR · pCVR,     L = w_ctr · L(click, pCTR) + w_ctcvr · L(click ∧ conversion, pCTCVR)

both over **all** impressions: pCVR gets no loss of its own, so it is never trained on the clicked impressions only
(the sample selection bias) and learns from every impression through the product. Served heads: ``ctr`` (primary),
``cvr`` and ``ctcvr``. pCVR is evaluated on the clicked impressions (``cvr_auc`` in training) and, where the data has
the counterfactual draws, over the entire impression space.

``cvr_on_clicks`` is the baseline the paper compares with: the same towers, with pCVR trained by its own log loss on
the clicked impressions only (L = L(click, pCTR) + L(conversion, pCVR | click)); its pCTCVR is served, not trained.
"""

import tensorflow as tf

from feature_spec.model_inputs import CLICK_ROLE, ModelInputs
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import BinaryTask, Head, ProductTask

CONVERSION_ROLE = 'conversion'
CVR_HEAD = Head('cvr', CONVERSION_ROLE, condition=CLICK_ROLE, counterfactual='conversion_if_clicked')


@register('cvr_on_clicks', entire_space=False)
@register('esmm')
class ESMM(MultiTaskModel):
    """ESMM. ``call → {'ctr', 'cvr', 'ctcvr' and their logits (``ctr_logits``, ``cvr_logits``), 'probabilities'
    (pCTR), 'logits'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        tower_units, activation, dropout: each tower's MLP.
        ctr_weight, ctcvr_weight: w_ctr, w_ctcvr (with ``entire_space=False``: the CTR and the CVR loss weights).
        entire_space: False trains pCVR on the clicked impressions only (``cvr_on_clicks``).
    """

    HEADS = (Head('ctr'), CVR_HEAD, Head('ctcvr', CONVERSION_ROLE, counterfactual=None))

    def __init__(self, inputs: ModelInputs, frequencies=None, tower_units=(200, 80), activation='relu', dropout=0.2,
                 ctr_weight=1.0, ctcvr_weight=1.0, entire_space=True, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {**self.bottom_hparams, 'tower_units': tuple(tower_units), 'activation': activation,
                        'dropout': dropout, 'ctr_weight': ctr_weight, 'ctcvr_weight': ctcvr_weight,
                        'entire_space': entire_space}
        self.ctr_tower = self.tower(tower_units, activation, dropout, 'ctr_tower')
        self.cvr_tower = self.tower(tower_units, activation, dropout, 'cvr_tower')
        click, conversion = inputs.label_for(CLICK_ROLE), inputs.label_for(CONVERSION_ROLE)
        thresholds = self.auc_thresholds
        self.set_tasks(
            BinaryTask(click, head='ctr', weight=ctr_weight, auc_thresholds=thresholds),
            BinaryTask(conversion, head='cvr', condition=click, weight=0.0 if entire_space else ctcvr_weight,
                       auc_thresholds=thresholds),
            ProductTask(conversion, ('ctr', 'cvr'), head='ctcvr', weight=ctcvr_weight if entire_space else 0.0,
                        auc_thresholds=thresholds))

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        outputs['ctr_logits'] = tf.squeeze(self.ctr_tower(shared, training=training), axis=-1)
        outputs['cvr_logits'] = tf.squeeze(self.cvr_tower(shared, training=training), axis=-1)
        return self.with_heads(outputs)

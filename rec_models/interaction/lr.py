"""Logistic regression, the family's baseline: the first-order model the FM family extends (Rendle, *Factorization
Machines*, ICDM 2010).

    ŷ = sigmoid(w0 + Σ_i w_i x_i)

over the first-order weights of :class:`~rec_models.layers.FieldVectors` (categorical ids, numerics and, with
``use_behavior``, the mean of the history's weights).

Choice: ``l2`` = 0.002 (about 1/B at the Trainer's batch of 512), not the family's 1. In LR the penalised weights
are the score itself, so a strong prior on rare ids erases their popularity signal: in the sweep of
``benchmarks/l2_sweep.py`` (README, "Defaults on real-format data") λ = 1 lost 0.082 AUC on a frappe-shaped libFM
file and 0.010 on the synthetic ``default`` set against the best λ, while λ ≈ 0.002 was within 0.0005 of the best on
both and on the ``small`` set.
"""

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldVectors, FMFirstOrder
from rec_models.registry import register


@register('lr')
class LR(RankingModel):
    """LR. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        l2: λ of the mini-batch-aware L2 on the weights (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, l2=0.002, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'l2': l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, use_behavior=use_behavior, l2=l2, frequencies=frequencies, vectors=False,
                                   name='fields')
        self.first_order = FMFirstOrder()

    def call(self, features, training=False):
        return click_outputs(self.first_order(self.fields(features, training=training)['weights']))

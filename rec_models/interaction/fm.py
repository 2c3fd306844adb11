"""Factorization machine (Rendle, *Factorization Machines*, ICDM 2010).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j)

The pairwise term in the O(kn) form ½ Σ_f [(Σ_i e_{i,f})² − Σ_i e_{i,f}²] (:class:`~rec_models.layers.FMSecondOrder`)
over the fields of :class:`~rec_models.layers.FieldVectors`.

Choice: ``l2`` = 0.1, not the family's 1. In the sweep of ``benchmarks/l2_sweep.py`` (README, "Defaults on
real-format data") no λ was within 0.005 AUC of the best on both a frappe-shaped libFM file (which wants λ ≤ 0.01:
λ = 1 lost 0.038) and the synthetic ``default`` set (which wants λ = 1: 0.01 and below lost 0.019 or more); 0.1 has
the smallest worst gap measured (−0.0077 on the frappe shape, −0.0022 on ``default``, −0.0020 on ``small``).
"""

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldVectors, FMFirstOrder, FMSecondOrder
from rec_models.registry import register


@register('fm')
class FM(RankingModel):
    """FM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k, the width of the latent vectors.
        l2: λ of the mini-batch-aware L2 on the latent vectors and weights (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=8, l2=0.1, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'l2': l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.second_order = FMSecondOrder()

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        return click_outputs(self.first_order(fields['weights']) + self.second_order(fields['vectors']))

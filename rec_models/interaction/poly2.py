"""POLY2 (Chang et al., *Training and Testing Low-degree Polynomial Data Mappings via Linear SVM*, JMLR 2010):
logistic regression plus one weight per pair of active features.

    ŷ = sigmoid(w0 + Σ_i w_i x_i + Σ_{i<j} w_{h(i,j)} x_i x_j)

* First order: the weights of :class:`~rec_models.layers.FieldVectors` (``vectors=False``, as in ``lr``): the
  non-sequence categorical ids, the numerics (w_f · x_f) and, with ``use_behavior``, the mean of the history's
  weights.
* Pairwise: :class:`~rec_models.layers.HashedPairwiseCross` over the ids of the non-sequence categorical inputs
  (input order), one hashed weight per (field i, id_i, field j, id_j), x_i = 1 for a present id (id 0, missing,
  takes part in no pair). Choices: the numerics enter the first order only (a hashed weight per pair of *ids* has
  no meaning for a real value, and a numeric × id cross would be a per-id linear slope, which POLY2 over
  one-hot features does not have); the behaviour sequences (multi-hot) enter the first order only as well.
* Regularisation: ``l2`` is the mini-batch-aware L2 of the first-order weights (as in ``lr``); the pair weights
  get :class:`HashedPairwiseCross`'s λ' Σ_b w_b² over the buckets of the batch's crosses with
  λ' = ``l2`` · ``cross_l2_scale``. λ' is scaled down because that penalty has no 1/n_j frequency weighting
  (λ' = 1 at every step would hold the crosses at 0); it is tied to ``l2`` so that ``l2 = 0`` turns every
  penalty off, as in the other models.
"""

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldVectors, FMFirstOrder, HashedPairwiseCross
from rec_models.registry import register


@register('poly2')
class POLY2(RankingModel):
    """POLY2. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        num_buckets: size of the hashed table of the pair weights w_{h(i,j)}.
        l2: λ of the mini-batch-aware L2 on the first-order weights (0: off).
        cross_l2_scale: λ' / λ, the L2 on the pair weights used by the batch relative to ``l2``.
        use_behavior: the behaviour sequences as first-order fields: False (none), True or ``'mean'`` (weights
            1/length) or ``'learned'`` (:class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, num_buckets=2 ** 20, l2=1.0, cross_l2_scale=1e-4,
                 use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'num_buckets': num_buckets, 'l2': l2, 'cross_l2_scale': cross_l2_scale,
                        'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, use_behavior=use_behavior, l2=l2, frequencies=frequencies, vectors=False,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.crossed_fields = tuple(f.name for f in inputs.of_kind(CATEGORICAL))
        multiple = len(self.crossed_fields) > 1
        self.cross = HashedPairwiseCross(num_buckets, l2=l2 * cross_l2_scale, name='cross') if multiple else None

    def call(self, features, training=False):
        logits = self.first_order(self.fields(features, training=training)['weights'])
        if self.cross is not None:
            ids = tf.stack([tf.cast(features[name], tf.int64) for name in self.crossed_fields], axis=1)
            logits += self.cross(ids, training=training)
        return click_outputs(logits)

"""Translation-based factorization machine (Pasricha and McAuley, *Translation-based Factorization Machines for
Sequential Recommendation*, RecSys 2018, eq. 4).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + Σ_{i<j} d²(v_i + v'_i, v_j) x_i x_j),      d²(a, b) = ‖a − b‖²

FM's ⟨v_i, v_j⟩ becomes the squared distance from the translated embedding of feature i to the embedding of j.
Sign: the distance is *added*, as in the paper's equation, not subtracted as a penalty; the
model learns the sign of the term's effect through w0, the w_i and the geometry (there is no learned scale).

* Embeddings v and first-order weights: :class:`~rec_models.layers.FieldVectors`.
* Translations v': a second :class:`FieldVectors` (``first_order=False``, name ``translations``): its own
  tables of the same shape (one v'_i per id, shared between fields sharing a vocabulary, like v), with the same
  mini-batch-aware L2.
* :class:`~rec_models.layers.TranslationInteraction` takes the *unscaled* vectors and the values x: a
  categorical field (and, with ``use_behavior``, a behaviour sequence, whose v and v' are the masked means over
  its steps) has x = 1 and its vectors as looked up; a numeric field f has x = its value and its learned field
  vectors v_f, v'_f (``FieldVectors(scale_numerics=False)``: scaled by x they would give x_i² x_j).
* ``distance_scale`` c multiplies the pairwise term (choice): c · Σ_{i<j} d²(…) is the paper's model with v and v'
  rescaled by √c (d² is quadratic in them), so it changes the parameterisation, initial scale and effective L2,
  not the model class. Default (``None``): c = 1 / (number of pairs), the mean squared distance, which keeps the
  logit of a model with O(0.1) weights out of saturation (the sum of n(n−1)/2 positive distances, ~50 at n = 15,
  would otherwise push every probability to 1); ``1.0`` gives the paper's sum literally.
* Σ_{i<j} is ordered (d² is not symmetric): the pairs follow :attr:`FieldVectors.field_names`, the looked-up
  inputs in input order (user, item, context, then the sequences with ``use_behavior``), then the numerics, so
  the translation belongs to the earlier field of each pair.
"""

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import FieldVectors, FMFirstOrder, TranslationInteraction
from rec_models.registry import register


@register('transfm')
class TransFM(RankingModel):
    """TransFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k, the width of the embeddings and of the translations.
        l2: λ of the mini-batch-aware L2 on the embeddings, translations and first-order weights (0: off).
        distance_scale: c, the factor of the pairwise term (``None``: 1 / the number of field pairs).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=8, l2=1.0, use_behavior=False,
                 distance_scale=None, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'l2': l2, 'use_behavior': use_behavior,
                        'distance_scale': distance_scale}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   scale_numerics=False, name='fields')
        self.translations = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2,
                                         frequencies=frequencies, first_order=False, scale_numerics=False,
                                         name='translations')
        self.first_order = FMFirstOrder()
        self.interaction = TranslationInteraction()
        pairs = max(self.fields.num_fields * (self.fields.num_fields - 1) // 2, 1)
        self.distance_scale = 1.0 / pairs if distance_scale is None else float(distance_scale)

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        translations = self.translations(features, training=training)['vectors']
        pairwise = self.distance_scale * self.interaction(fields['vectors'], translations, fields['values'])
        return click_outputs(self.first_order(fields['weights']) + pairwise)

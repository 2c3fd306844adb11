"""Layers shared by the ranking models, grouped by kind.

* :mod:`.embedding`: ``FieldEmbedding`` (tables + mini-batch-aware L2), ``LinearEmbedding``, ``NumericEmbedding``
* :mod:`.fields`: ``FieldVectors`` (the FM family's field vectors and first-order weights)
* :mod:`.field_aware`: ``FieldAwareEmbedding`` (a k × n matrix per feature), ``FieldAwareInteraction`` (FFM,
  DeepFFM)
* :mod:`.dice`: ``Dice`` activation
* :mod:`.mlp`: ``MLP`` tower
* :mod:`.interaction`: ``FMFirstOrder``, ``FMSecondOrder``; :mod:`.bi_interaction`: ``BiInteractionPooling`` (NFM);
  :mod:`.poly2`: ``HashedPairwiseCross``; :mod:`.wide`: ``HashedFeatureCrosses`` (Wide&Deep);
  :mod:`.transfm`: ``TranslationInteraction``
* :mod:`.product`: ``InnerProduct``, ``OuterProduct`` (PNN); :mod:`.cross`: ``CrossNetwork`` (DCN)
* :mod:`.afm`: ``AttentionalPairwisePooling``; :mod:`.self_attention`: ``InteractingLayer`` (AutoInt);
  :mod:`.cenet`: ``CENetFieldAttention`` (FAT-DeepFFM); :mod:`.activation_unit`: ``ActivationUnit``,
  ``AttentionPooling`` (DIN)
* :mod:`.experts`: ``MixtureOfExperts`` (shared bottom, OMoE, MMoE), ``gate_entropy``
* :mod:`.pooling`: ``MaskedSumPooling``, ``MaskedMeanPooling``, ``BehaviorStepValues``,
  ``LearnedStepValues``; :mod:`.softmax`: ``masked_softmax``
* :mod:`.gru`: ``InterestGRU`` (GRU, AIGRU, AGRU, AUGRU); :mod:`.interest_evolution`: ``InterestEvolution`` (DIEN);
  :mod:`.transformer`: ``MultiHeadSelfAttention`` (DMIN), ``TransformerBlock`` (BST, DSIN);
  :mod:`.additive_attention`: ``AdditiveAttentionScores`` (DMR); :mod:`.bilinear_attention`: ``BilinearAttention``
  (DIEN, DSIN); :mod:`.lstm`: ``PeepholeLSTM``, ``BidirectionalLSTM`` (DSIN, DUPN);
  :mod:`.auxiliary_attention`: ``SelfAttentivePooling``, ``InteractiveAttentionPooling`` (DSTN)
* :mod:`.frequency_estimation`: ``StreamingFrequencyEstimator`` (streaming item frequency for the logQ correction)
* :mod:`.capsule`: ``BehaviorToInterestRouting`` (B2I dynamic routing), ``LabelAwareAttention``, ``squash``,
  ``adaptive_interest_count`` (MIND)
"""

from rec_models.layers.activation_unit import ActivationUnit, AttentionPooling
from rec_models.layers.additive_attention import AdditiveAttentionScores
from rec_models.layers.afm import AttentionalPairwisePooling
from rec_models.layers.auxiliary_attention import InteractiveAttentionPooling, SelfAttentivePooling
from rec_models.layers.bi_interaction import BiInteractionPooling
from rec_models.layers.bilinear_attention import BilinearAttention
from rec_models.layers.capsule import BehaviorToInterestRouting, LabelAwareAttention, adaptive_interest_count, squash
from rec_models.layers.cenet import CENetFieldAttention
from rec_models.layers.cross import CrossNetwork
from rec_models.layers.dice import Dice
from rec_models.layers.embedding import FieldEmbedding, LinearEmbedding, NumericEmbedding
from rec_models.layers.experts import MixtureOfExperts, gate_entropy
from rec_models.layers.field_aware import FieldAwareEmbedding, FieldAwareInteraction
from rec_models.layers.fields import FieldVectors
from rec_models.layers.frequency_estimation import StreamingFrequencyEstimator
from rec_models.layers.gru import InterestGRU
from rec_models.layers.interaction import FMFirstOrder, FMSecondOrder
from rec_models.layers.interest_evolution import InterestEvolution
from rec_models.layers.lstm import BidirectionalLSTM, PeepholeLSTM
from rec_models.layers.mlp import MLP
from rec_models.layers.pooling import BehaviorStepValues, LearnedStepValues, MaskedMeanPooling, MaskedSumPooling
from rec_models.layers.poly2 import HashedPairwiseCross
from rec_models.layers.product import InnerProduct, OuterProduct
from rec_models.layers.self_attention import InteractingLayer
from rec_models.layers.transfm import TranslationInteraction
from rec_models.layers.transformer import MultiHeadSelfAttention, TransformerBlock
from rec_models.layers.wide import HashedFeatureCrosses

__all__ = ['ActivationUnit', 'AdditiveAttentionScores', 'AttentionPooling', 'AttentionalPairwisePooling',
           'BehaviorStepValues', 'BiInteractionPooling', 'BidirectionalLSTM', 'BilinearAttention',
           'BehaviorToInterestRouting', 'LabelAwareAttention', 'adaptive_interest_count', 'squash',
           'CENetFieldAttention', 'CrossNetwork', 'Dice', 'FMFirstOrder', 'FMSecondOrder', 'FieldAwareEmbedding',
           'FieldAwareInteraction', 'FieldEmbedding', 'FieldVectors', 'HashedFeatureCrosses', 'HashedPairwiseCross',
           'InnerProduct', 'InteractingLayer', 'InteractiveAttentionPooling', 'InterestEvolution', 'InterestGRU', 'LearnedStepValues',
           'LinearEmbedding', 'MLP', 'MaskedMeanPooling', 'MixtureOfExperts', 'gate_entropy', 'MaskedSumPooling',
           'MultiHeadSelfAttention', 'StreamingFrequencyEstimator',
           'NumericEmbedding', 'OuterProduct', 'PeepholeLSTM', 'SelfAttentivePooling', 'TransformerBlock', 'TranslationInteraction']

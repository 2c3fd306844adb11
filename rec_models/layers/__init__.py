"""Layers shared by the ranking models.

* :mod:`.embedding`: ``FieldEmbedding`` (tables + mini-batch-aware L2), ``LinearEmbedding``, ``NumericEmbedding``
* :mod:`.dice`: ``Dice`` activation
* :mod:`.mlp`: ``MLP`` tower
* :mod:`.interaction`: ``FMFirstOrder``, ``FMSecondOrder``
* :mod:`.pooling`: ``MaskedSumPooling``, ``MaskedMeanPooling``
* :mod:`.activation_unit`: ``ActivationUnit``, ``AttentionPooling`` (DIN)
"""

from rec_models.layers.activation_unit import ActivationUnit, AttentionPooling
from rec_models.layers.dice import Dice
from rec_models.layers.embedding import FieldEmbedding, LinearEmbedding, NumericEmbedding
from rec_models.layers.interaction import FMFirstOrder, FMSecondOrder
from rec_models.layers.mlp import MLP
from rec_models.layers.pooling import MaskedMeanPooling, MaskedSumPooling

__all__ = ['ActivationUnit', 'AttentionPooling', 'Dice', 'FieldEmbedding', 'LinearEmbedding', 'NumericEmbedding',
           'FMFirstOrder', 'FMSecondOrder', 'MLP', 'MaskedMeanPooling', 'MaskedSumPooling']

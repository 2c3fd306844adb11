"""DeepFM (Guo et al., *DeepFM: A Factorization-Machine based Neural Network for CTR Prediction*, IJCAI 2017): an FM
component and a deep component over one shared embedding.

    ŷ = sigmoid(y_FM + y_DNN)
    y_FM = w0 + Σ_i w_i x_i + Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j
    y_DNN = MLP([e_1, …, e_n])

The fields are :class:`~rec_models.layers.FieldVectors`: every non-sequence categorical input, every numeric input
and, with ``use_behavior``, every behaviour sequence mean-pooled. The plain DeepFM (the default) sees no history.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, FieldVectors, FMFirstOrder, FMSecondOrder
from rec_models.registry import register


@register('deepfm')
class DeepFM(RankingModel):
    """DeepFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the deep component's hidden layers.
        activation: the deep component's activation (``'relu'``, ``'prelu'`` or ``'dice'``).
        dropout: dropout rate after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the embeddings and the first-order weights (0: off); the defaults of
            ``l2`` and ``dropout`` are DIN's, so that the two are compared under the same regularisation.
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
        embedding_dim: k, the width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu',
                 dropout=0.2, l2=1.0, use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'use_behavior': use_behavior, 'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.second_order = FMSecondOrder()
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        vectors = fields['vectors']
        deep = self.deep(tf.reshape(vectors, [-1, vectors.shape[1] * vectors.shape[2]]), training=training)
        logits = self.first_order(fields['weights']) + self.second_order(vectors) + tf.squeeze(deep, axis=-1)
        return click_outputs(logits)

"""Deep & Cross Network (Wang et al., *Deep & Cross Network for Ad Click Predictions*, ADKDD 2017).

    x_0 = [e_1, …, e_n]                                  (the field vectors flattened, n·k wide)
    x_{l+1} = x_0 x_lᵀ w_l + b_l + x_l,  l = 0, …, L−1    (cross network,
                                                          :class:`~rec_models.layers.CrossNetwork`)
    h_{l+1} = ReLU(W_l h_l + b_l),  h_0 = x_0             (deep network, :class:`~rec_models.layers.MLP`)
    ŷ = sigmoid(w_logitsᵀ [x_L ; h_L'] + b_logits)        (combination layer)

The e_i are :class:`~rec_models.layers.FieldVectors`: the categorical inputs' embeddings and the numeric inputs as
x_f · v_f (the paper stacks the raw dense features beside the embeddings; here they enter as the FM family's
numeric field vectors, so that x_0 has one width k per field) and, with ``use_behavior``, the behaviour sequences
mean-pooled. DCN has no first-order weights of its own: the cross network's x_0 term carries the linear part.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, CrossNetwork, FieldVectors
from rec_models.registry import register


@register('dcn')
class DCN(RankingModel):
    """DCN (v1). ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        cross_layers: L, the number of cross layers.
        hidden_units: widths of the deep network's hidden layers.
        activation: the deep network's activation.
        dropout: dropout rate after each hidden layer of the deep network.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
        embedding_dim: k, the width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, cross_layers=3, hidden_units=(200, 80),
                 activation='relu', dropout=0.2, l2=1.0, use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'cross_layers': cross_layers, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout, 'l2': l2, 'use_behavior': use_behavior, 'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   first_order=False, name='fields')
        self.cross = CrossNetwork(cross_layers, name='cross')
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, name='deep')
        self.combination = tf.keras.layers.Dense(1, name='combination')

    def call(self, features, training=False):
        vectors = self.fields(features, training=training)['vectors']
        x0 = tf.reshape(vectors, [-1, vectors.shape[1] * vectors.shape[2]])
        stacked = tf.concat([self.cross(x0), self.deep(x0, training=training)], axis=-1)
        return click_outputs(tf.squeeze(self.combination(stacked), axis=-1))

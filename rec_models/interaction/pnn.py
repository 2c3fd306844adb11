"""Product-based neural network (Qu et al., *Product-based Neural Networks for User Response Prediction*,
ICDM 2016): IPNN and OPNN.

The field vectors f_1, …, f_n (``[n, k]``, :class:`~rec_models.layers.FieldVectors`) feed the product layer, whose
two halves are added in the first hidden layer:

    l_1 = ReLU(l_z + l_p + b_1)
    l_z^d = W_z^d ⊙ z = Σ_{i,a} (W_z^d)_{ia} f_{i,a}             z = (f_1, …, f_n), the linear signals
    IPNN: l_p^d = Σ_{i<j} (W_p^d)_{ij} ⟨f_i, f_j⟩                 (:class:`~rec_models.layers.InnerProduct`)
    OPNN: l_p^d = Σ_{a,b} (W_p^d)_{ab} p_{ab},  p = f_Σ f_Σᵀ,  f_Σ = Σ_i f_i
                                                                 (:class:`~rec_models.layers.OuterProduct`)
    l_2, …     = MLP(l_1)                                        (``hidden_units``)
    ŷ = sigmoid(w_outᵀ l_L + b_out)

l_1 has D1 = ``product_units`` units (dropout after it, as after each hidden layer of the tower). The paper's
low-rank decomposition of the IPNN weights W_p^d (θ^d θ^dᵀ) is not applied: W_p is a full ``[n(n−1)/2, D1]``
kernel (the pairs are few). PNN has no first-order term w_i, so the fields have no first-order weights.

Registered as ``pnn`` (inner products, the default) and ``opnn`` (``product='outer'``).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, FieldVectors, InnerProduct, OuterProduct
from rec_models.registry import register

PRODUCTS = ('inner', 'outer')


@register('opnn', product='outer')
@register('pnn')
class PNN(RankingModel):
    """PNN (IPNN or OPNN). ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        product: ``'inner'`` (IPNN) or ``'outer'`` (OPNN).
        product_units: D1, the width of the product layer l_1.
        hidden_units: widths of the hidden layers above l_1 (``product_units`` + these = DeepFM's (200, 80)).
        activation: the activation of the layers above l_1 (l_1 itself is ReLU, as in the paper).
        dropout: dropout rate after l_1 and after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
        embedding_dim: k, the width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, product='inner', product_units=200, hidden_units=(80,),
                 activation='relu', dropout=0.2, l2=1.0, use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if product not in PRODUCTS:
            raise ValueError(f'unknown product {product!r}; expected one of {PRODUCTS}')
        self.hparams = {'product': product, 'product_units': product_units, 'hidden_units': tuple(hidden_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2, 'use_behavior': use_behavior,
                        'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   first_order=False, name='fields')
        self.linear_signal = tf.keras.layers.Dense(product_units, name='linear_signal')  # W_z and b_1
        if product == 'inner':
            self.product = InnerProduct(name='inner_product')
            self.product_signal = tf.keras.layers.Dense(product_units, use_bias=False, name='product_signal')  # W_p
        else:
            self.product = OuterProduct(units=product_units, name='outer_product')  # W_p inside
            self.product_signal = None
        self.product_dropout = tf.keras.layers.Dropout(dropout)
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    def call(self, features, training=False):
        vectors = self.fields(features, training=training)['vectors']
        l_z = self.linear_signal(tf.reshape(vectors, [-1, vectors.shape[1] * vectors.shape[2]]))
        l_p = self.product(vectors)
        if self.product_signal is not None:
            l_p = self.product_signal(l_p)
        l_1 = self.product_dropout(tf.nn.relu(l_z + l_p), training=training)
        return click_outputs(tf.squeeze(self.deep(l_1, training=training), axis=-1))

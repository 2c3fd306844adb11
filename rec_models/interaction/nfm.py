"""Neural factorization machine (He and Chua, *Neural Factorization Machines for Sparse Predictive Analytics*,
SIGIR 2017).

    ŷ = sigmoid(w0 + Σ_i w_i x_i + hᵀ σ_L(W_L(… σ_1(W_1 f_BI(V_x) + b_1) …) + b_L))
    f_BI(V_x) = Σ_{i<j} x_i v_i ⊙ x_j v_j = ½ [(Σ_i e_i)² − Σ_i e_i²]      (Bi-Interaction pooling, a k-vector)

Dropout on f_BI (the paper's regulariser of the pooling layer) and after each hidden layer; the last linear unit is
h. Fields: :class:`~rec_models.layers.FieldVectors`.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, BiInteractionPooling, FieldVectors, FMFirstOrder
from rec_models.registry import register


@register('nfm')
class NFM(RankingModel):
    """NFM. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        embedding_dim: k.
        hidden_units: widths of the layers above the Bi-Interaction pooling (the paper's best: one layer).
        activation: their activation.
        dropout: dropout rate on f_BI and after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the embeddings and weights (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=8, hidden_units=(64,), activation='relu',
                 dropout=0.2, l2=1.0, use_behavior=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'embedding_dim': embedding_dim, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout, 'l2': l2, 'use_behavior': use_behavior}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.first_order = FMFirstOrder()
        self.bi_interaction = BiInteractionPooling()
        self.pooling_dropout = tf.keras.layers.Dropout(dropout)
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        pooled = self.pooling_dropout(self.bi_interaction(fields['vectors']), training=training)
        deep = tf.squeeze(self.deep(pooled, training=training), axis=-1)
        return click_outputs(self.first_order(fields['weights']) + deep)

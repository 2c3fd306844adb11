"""AutoInt (Song et al., *AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural Networks*,
CIKM 2019): stacked multi-head self-attention over the field vectors.

    e_m = v_m x_m                                                (:class:`~rec_models.layers.FieldVectors`)
    α_{m,k}^h = softmax_k(⟨W_Q^h e_m, W_K^h e_k⟩)
    e_m^Res = ReLU(⊕_h Σ_k α_{m,k}^h W_V^h e_k + W_Res e_m)       (one interacting layer,
                                                                   :class:`~rec_models.layers.InteractingLayer`)
    ŷ = sigmoid(wᵀ (e_1^Res ⊕ … ⊕ e_n^Res) + b)                  (output layer over the last layer's fields)

``layers`` interacting layers are stacked (the first maps k → heads·head_dim, the others heads·head_dim →
heads·head_dim); the defaults are the paper's 3 layers of 2 heads with d' = 32 (its k = 16, here 8 as in the
other FM-family models). AutoInt+ (``deep=True``) adds a feed-forward network over the flattened field vectors and, as the
paper "jointly trains" the two, sums its logit with AutoInt's:

    ŷ = sigmoid(wᵀ ⊕_m e_m^Res + b + MLP([e_1, …, e_n]))

The plain AutoInt (the default) has no MLP; ``hidden_units``, ``activation`` and ``dropout`` only shape AutoInt+'s.

Besides ``logits`` and ``probabilities`` the outputs hold ``'attention_maps'``: the last interacting layer's
α ``[B, heads, n, n]`` (``[b, h, m, k]`` = α_{m,k}^h, rows sum to 1; fields in :attr:`FieldVectors.field_names`
order), the paper's §5 attention heat maps.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import RankingModel, click_outputs
from rec_models.layers import MLP, FieldVectors, InteractingLayer
from rec_models.registry import register


@register('autoint')
class AutoInt(RankingModel):
    """AutoInt / AutoInt+. ``call(features, training=False) → {'logits', 'probabilities', 'attention_maps'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        layers: the number of stacked interacting layers.
        heads: H, attention heads per layer.
        head_dim: d', the width of each head.
        residual: the interacting layers' residual connection W_Res e_m.
        deep: AutoInt+: add an MLP over the flattened field vectors.
        hidden_units: widths of AutoInt+'s MLP (unused without ``deep``).
        activation: its activation.
        dropout: dropout rate after each of its hidden layers.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        use_behavior: the behaviour sequences as fields: False (none), True or ``'mean'`` (weights 1/length) or
            ``'learned'`` (weights from each step's time gap and type, :class:`~rec_models.layers.BehaviorStepValues`).
        embedding_dim: k, the width of every field's embedding.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, layers=3, heads=2, head_dim=32, residual=True,
                 deep=False, hidden_units=(200, 80), activation='relu', dropout=0.2, l2=1.0, use_behavior=False,
                 embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if layers < 1:
            raise ValueError(f'AutoInt needs at least one interacting layer, got layers={layers}')
        self.hparams = {'layers': layers, 'heads': heads, 'head_dim': head_dim, 'residual': residual, 'deep': deep,
                        'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout, 'l2': l2,
                        'use_behavior': use_behavior, 'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   first_order=False, name='fields')
        self.interacting = [InteractingLayer(heads, head_dim, residual=residual, name=f'interacting_{i}')
                            for i in range(layers)]
        self.output_layer = tf.keras.layers.Dense(1, name='output_layer')
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep') if deep \
            else None

    def call(self, features, training=False):
        vectors = self.fields(features, training=training)['vectors']
        x = vectors
        for layer in self.interacting:
            x, attention = layer(x, return_attention=True)
        logits = tf.squeeze(self.output_layer(tf.reshape(x, [-1, x.shape[1] * x.shape[2]])), axis=-1)
        if self.deep is not None:
            flat = tf.reshape(vectors, [-1, vectors.shape[1] * vectors.shape[2]])
            logits += tf.squeeze(self.deep(flat, training=training), axis=-1)
        return click_outputs(logits, attention_maps=attention)

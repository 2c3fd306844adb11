"""DSTN's weighting of auxiliary ads (Ouyang et al., *Deep Spatio-Temporal Neural Networks for Click-Through Rate
Prediction*, KDD 2019, §3.3–3.4). For the vectors x_1 … x_n of one kind of auxiliary ad (``[B, n, d]``,
padded steps masked):

* self-attention (eq. 4–5): β_i = f(x_i), an MLP to a scalar; α_i = exp(β_i) / Σ_j exp(β_j); x̃ = Σ_i α_i x_i.
  The weights do not depend on the target ad and sum to 1.
* interactive attention (eq. 7): α_i = exp(hᵀ ReLU(W_t x_t + W_a x_i + b_1) + b_2); x̃ = Σ_i α_i x_i. The weights
  depend on the target ad's vector x_t and are **not** normalised, so x̃ also carries how many relevant ads there
  are, and irrelevant ads can all get small weights.

Choice (the paper leaves the range open): the interactive score is clipped at ``MAX_LOG_WEIGHT`` before the
exponential, so that a large score early in training cannot overflow; a padded step gets weight 0, and a kind with
no ad pools to 0.
"""

import tensorflow as tf

from rec_models.layers.mlp import MLP
from rec_models.layers.softmax import masked_softmax

MAX_LOG_WEIGHT = 15.0


class SelfAttentivePooling(tf.keras.layers.Layer):
    """``call(steps [B, n, d], mask [B, n], training=None) → (x̃ [B, d], α [B, n])`` with α = softmax(f(x_i)).

    Args:
        hidden_units: widths of f's hidden layers (ReLU); f ends in one linear unit.
    """

    def __init__(self, hidden_units=(64,), **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.score = MLP(self.hidden_units, activation='relu', output_units=1, name='score')

    def call(self, steps, mask, training=None):
        weights = masked_softmax(tf.squeeze(self.score(steps, training=training), axis=-1), mask)   # α_i
        return tf.einsum('bn,bnd->bd', weights, steps), weights

    def get_config(self):
        return {**super().get_config(), 'hidden_units': self.hidden_units}


class InteractiveAttentionPooling(tf.keras.layers.Layer):
    """``call({'steps': x_i [B or 1, n, d], 'target': x_t [B, t]}, mask [B or 1, n]) → (x̃ [B, d], α [B, n])``.

    The ads' part W_a x_i + b_1 is computed once when the steps have batch 1 against B targets (one request's
    auxiliary ads against B candidates).

    Args:
        units: width of the hidden layer (the rows of W_t and W_a).
    """

    def __init__(self, units=64, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.step_kernel = self.add_weight(name='step_kernel', shape=(int(input_shape['steps'][-1]), self.units),
                                           initializer='glorot_uniform')                     # W_a
        self.target_kernel = self.add_weight(name='target_kernel', shape=(int(input_shape['target'][-1]),
                                                                          self.units),
                                             initializer='glorot_uniform')                   # W_t
        self.hidden_bias = self.add_weight(name='hidden_bias', shape=(self.units,), initializer='zeros')   # b_1
        self.output_kernel = self.add_weight(name='output_kernel', shape=(self.units,),
                                             initializer='glorot_uniform')                   # h
        self.output_bias = self.add_weight(name='output_bias', shape=(), initializer='zeros')  # b_2
        super().build(input_shape)

    def call(self, inputs, mask):
        steps, target = inputs['steps'], inputs['target']
        step_part = tf.einsum('bnd,du->bnu', steps, self.step_kernel) + self.hidden_bias           # W_a x_i + b_1
        target_part = tf.matmul(target, self.target_kernel)[:, tf.newaxis, :]                       # W_t x_t
        scores = tf.einsum('bnu,u->bn', tf.nn.relu(step_part + target_part), self.output_kernel) + self.output_bias
        valid = tf.cast(tf.broadcast_to(mask, tf.shape(scores)), scores.dtype)
        weights = tf.exp(tf.minimum(scores, MAX_LOG_WEIGHT)) * valid                                 # α_i
        steps = tf.broadcast_to(steps, tf.concat([tf.shape(weights), tf.shape(steps)[2:]], axis=0))
        return tf.einsum('bn,bnd->bd', weights, steps), weights

    def get_config(self):
        return {**super().get_config(), 'units': self.units}

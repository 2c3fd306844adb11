"""DIN's local activation unit and the attention pooling it drives (Zhou et al., *Deep Interest Network for
Click-Through Rate Prediction*, KDD 2018, §4.3).

The user's interest in candidate A is a weighted sum of the behaviour embeddings e_1 … e_H:

    v_U(A) = f(v_A, e_1, …, e_H) = Σ_j a(e_j, v_A) · e_j = Σ_j w_j · e_j

where the activation unit a(·) is a small feed-forward network whose input is the behaviour, the candidate,
their difference and their element-wise product (the explicit relevance signal), plus — our documented
extension — behaviour side information s_j that has no candidate counterpart (time-gap bucket and behaviour
type embeddings), which lets the weight depend on recency and on the kind of behaviour:

    a(e_j, v_A) = MLP([e_j, v_A, e_j − v_A, e_j ⊙ v_A, s_j]) → a scalar, linear output unit.

The weights are not normalised by a softmax: the paper keeps Σ_j w_j free so that v_U(A)'s norm carries the
intensity of the user's interest in A. Padded steps get weight 0. The pooled vector is the weighted sum of the
whole behaviour, Σ_j w_j · [e_j, s_j]: the paper's behaviour embedding is the concatenation of all its feature
groups, and the side information is part of the behaviour (pooling it was chosen by measurement on the
default synthetic data set, README "Results").

The first layer, [e, v, e − v, e ⊙ v, s] · W with W = [W1; W2; W3; W4; W5] (one ``(4d + d_s) × H`` kernel, the
paper's parameterisation), is evaluated in the algebraically equal split form

    e · (W1 + W3) + (e ⊙ v) · W4 + s · W5  +  v · (W2 − W3)

whose last term depends on the candidate only and is computed once per example instead of once per behaviour;
per behaviour this is a (2d + d_s)-wide product instead of a (4d + d_s)-wide one. When one user's behaviours are
scored against N candidates at once (keys of batch 1, queries of batch N), e · (W1 + W3) + s · W5 is computed once
for all of them.

``AttentionPooling(..., packed=True)`` (DIN's training step) runs the unit on the valid steps only: the
n = Σ_i length_i steps are gathered from ``[B, L]`` into one ``[n, ·]`` batch, scored, and pooled back per example
with a segment sum. Weights, pooled vectors and gradients equal the padded form's (Dice's statistics cover the same
valid steps); the cost follows the number of behaviours instead of B · L, which matters as soon as histories are
shorter than ``L`` (``benchmarks/deepctr_compare.py --history_mean``).
"""

import tensorflow as tf

from rec_models.layers.mlp import MLP, apply_activation, make_activation


class ActivationUnit(tf.keras.layers.Layer):
    """w_j = a(e_j, v_A): ``{'keys': [B, L, d], 'query': [B, d], 'side': [B, L, d_s] (optional)}`` → ``[B, L]``.

    ``call(inputs, mask, training=None)``; ``mask`` ``[B, L]`` marks valid steps: their weights are the unit's
    output, padded steps get 0, and Dice's batch statistics see valid steps only. With ``rows`` ``[n]`` in
    ``inputs``, ``keys`` ``[n, d]`` (and ``side``) are n valid steps packed together, step i belonging to example
    ``rows[i]`` of ``query``, and the result is ``[n]`` (no mask).

    Args:
        hidden_units: widths of the hidden layers (the first is the split layer of kernel ``W``).
        activation: ``'dice'`` (the paper's), ``'prelu'`` or ``'relu'``.
    """

    def __init__(self, hidden_units=(80, 40), activation='dice', **kwargs):
        super().__init__(**kwargs)
        if not hidden_units:
            raise ValueError('the activation unit needs at least one hidden layer')
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.tower = MLP(self.hidden_units[1:], activation=activation, output_units=1)

    def build(self, input_shape):
        key_dim = int(input_shape['keys'][-1])
        if int(input_shape['query'][-1]) != key_dim:
            raise ValueError(f"keys ({key_dim}) and query ({input_shape['query'][-1]}) differ in width")
        side_dim = int(input_shape['side'][-1]) if 'side' in input_shape else 0
        self.kernel = self.add_weight(name='kernel', shape=(4 * key_dim + side_dim, self.hidden_units[0]),
                                      initializer='glorot_uniform')
        self.bias = self.add_weight(name='bias', shape=(self.hidden_units[0],), initializer='zeros')
        self.first_activation = make_activation(self.activation, rank=3)
        super().build(input_shape)

    def first_layer(self, inputs):
        """The first layer's pre-activation [e, v, e − v, e ⊙ v, s] · W + b in the split form: ``[B, L, H]``.

        The behaviours (``keys``, ``side``) may have batch 1 against N queries (one user's sequence against N
        candidates, the ``rank`` signature): their own part, e · (W1 + W3) + s · W5, is then computed once.
        """
        keys, query = inputs['keys'], inputs['query']
        d = keys.shape[-1]
        w1, w2, w3, w4, w5 = (self.kernel[:d], self.kernel[d:2 * d], self.kernel[2 * d:3 * d],
                              self.kernel[3 * d:4 * d], self.kernel[4 * d:])
        per_example = tf.matmul(query, w2 - w3) + self.bias                          # v·(W2 − W3) + b: [B, H]
        behaviour, behaviour_kernel = [keys], [w1 + w3]                             # e·(W1 + W3) + s·W5
        if 'side' in inputs:
            behaviour.append(inputs['side'])
            behaviour_kernel.append(w5)
        per_step = _dense_3d(tf.concat(behaviour, axis=-1), tf.concat(behaviour_kernel, axis=0))
        interaction = _dense_3d(keys * query[:, tf.newaxis, :], w4)                  # (e ⊙ v)·W4
        return per_step + interaction + per_example[:, tf.newaxis, :]

    def packed_first_layer(self, inputs):
        """The first layer's pre-activation at the valid steps only: ``keys`` ``[n, d]`` (``side`` ``[n, d_s]``) of the
        n valid steps, ``rows`` ``[n]`` the example each belongs to, ``query`` ``[B, d]``; ``[n, H]``."""
        keys, query, rows = inputs['keys'], inputs['query'], inputs['rows']
        d = keys.shape[-1]
        w1, w2, w3, w4, w5 = (self.kernel[:d], self.kernel[d:2 * d], self.kernel[2 * d:3 * d],
                              self.kernel[3 * d:4 * d], self.kernel[4 * d:])
        per_example = tf.matmul(query, w2 - w3) + self.bias                          # once per example: [B, H]
        behaviour, behaviour_kernel = [keys, keys * tf.gather(query, rows)], [w1 + w3, w4]
        if 'side' in inputs:
            behaviour.append(inputs['side'])
            behaviour_kernel.append(w5)
        per_step = tf.matmul(tf.concat(behaviour, axis=-1), tf.concat(behaviour_kernel, axis=0))
        return per_step + tf.gather(per_example, rows)

    def call(self, inputs, mask=None, training=None):
        if 'rows' in inputs:   # packed valid steps as one [1, n, H] sequence: all valid, Dice needs no mask
            first = self.packed_first_layer(inputs)[tf.newaxis]
            hidden = apply_activation(self.first_activation, first, training=training)
            return tf.reshape(self.tower(hidden, training=training), [-1])
        hidden = apply_activation(self.first_activation, self.first_layer(inputs), training=training, mask=mask)
        scores = tf.squeeze(self.tower(hidden, training=training, mask=mask), axis=-1)
        return scores * tf.cast(mask, scores.dtype)

    def get_config(self):
        return {**super().get_config(), 'hidden_units': self.hidden_units, 'activation': self.activation}


def _dense_3d(x, kernel):
    """``[B, L, n] · [n, H] → [B, L, H]`` as one 2-D matrix product."""
    shape = tf.shape(x)
    out = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel)
    return tf.reshape(out, tf.concat([shape[:-1], [kernel.shape[-1]]], axis=0))


class AttentionPooling(tf.keras.layers.Layer):
    """v_U(A) = Σ_j a(e_j, v_A) · [e_j, s_j] over valid steps, no softmax.

    ``call(inputs, mask, training=None, packed=False) → (pooled [B, d + d_s], weights [B, L])`` with ``inputs`` as
    for :class:`ActivationUnit`; the weights are returned for inspection. ``packed``: compute at the valid steps
    only (keys and query of one batch; not for one sequence against N queries).
    """

    def __init__(self, hidden_units=(80, 40), activation='dice', **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.unit = ActivationUnit(hidden_units, activation)

    def call(self, inputs, mask, training=None, packed=False):
        if packed:
            return self._packed(inputs, mask, training)
        values = inputs['keys'] if 'side' not in inputs else tf.concat([inputs['keys'], inputs['side']], axis=-1)
        weights = self.unit(inputs, mask=mask, training=training)
        # [B, 1, L] · [B or 1, L, d]: the behaviours broadcast against the weights of N candidates.
        return tf.squeeze(tf.matmul(weights[:, tf.newaxis, :], values), axis=1), weights

    def _packed(self, inputs, mask, training):
        """The unit over the n valid steps only, gathered from ``[B, L]`` into ``[n]`` rows, then pooled back per
        example: the same weights and pooled vector as the padded form, at a cost proportional to the valid steps."""
        steps = tf.where(mask)                                                       # [n, 2]: (example, step)
        rows = steps[:, 0]
        packed = {'keys': tf.gather_nd(inputs['keys'], steps), 'query': inputs['query'], 'rows': rows}
        values = packed['keys']
        if 'side' in inputs:
            packed['side'] = tf.gather_nd(inputs['side'], steps)
            values = tf.concat([values, packed['side']], axis=-1)
        scores = self.unit(packed, training=training)                                # [n]
        batch = tf.shape(mask, out_type=tf.int64)[0]
        pooled = tf.math.unsorted_segment_sum(scores[:, tf.newaxis] * values, rows, batch)
        return pooled, tf.scatter_nd(steps, scores, tf.shape(mask, out_type=tf.int64))

    def get_config(self):
        return {**super().get_config(), 'hidden_units': self.hidden_units, 'activation': self.activation}

"""Mixture of experts for multi-task learning (Ma et al., *Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts*, KDD 2018).

    f_i(x): expert i, an MLP;      g^k(x) = softmax(W_gk x) ∈ Δ^n;      f^k(x) = Σ_i g^k(x)_i f_i(x)

the input of task k's tower. ``gates='per_task'`` is MMoE (one gate per task), ``'shared'`` is OMoE (one gate for
every task), ``None`` is the shared bottom (one expert, f(x) for every task). Each expert is its own MLP whose
kernels draw their own initial values (a known failure of public code is every expert initialised from one seed, so
that the experts stay identical and the mixture is one network).

``gate_dropout`` (Zhao et al., RecSys 2019, who saw gates polarise onto few experts): in training each expert is
dropped from a gate with that probability, per example, and the gate renormalised over the kept experts (at least
one is always kept).
"""

import tensorflow as tf

from rec_models.layers.mlp import MLP

GATES = ('per_task', 'shared', None)


class MixtureOfExperts(tf.keras.layers.Layer):
    """``call(x [B, d], training=None) → (inputs of the task towers: a list of K [B, e], gates [B, K, n] or None)``.

    Args:
        num_tasks: K.
        num_experts: n (1 for the shared bottom).
        expert_units: widths of each expert's layers; the last is the width e of f_i(x).
        gates: ``'per_task'`` (MMoE), ``'shared'`` (OMoE) or None (shared bottom).
        activation, dropout: of the experts' layers.
        gate_dropout: the probability of dropping an expert from a gate in training.
    """

    def __init__(self, num_tasks, num_experts, expert_units, gates='per_task', activation='relu', dropout=0.0,
                 gate_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if gates not in GATES:
            raise ValueError(f'unknown gates {gates!r}; expected one of {GATES}')
        if num_tasks < 1 or num_experts < 1 or (gates is None and num_experts != 1):
            raise ValueError(f'need num_tasks, num_experts ≥ 1 and one expert without gates; got {num_tasks}, '
                             f'{num_experts}, gates={gates!r}')
        if not 0 <= gate_dropout < 1:
            raise ValueError(f'gate_dropout must be in [0, 1), got {gate_dropout}')
        self.num_tasks = num_tasks
        self.num_experts = num_experts
        self.gates = gates
        self.gate_dropout = gate_dropout
        self.experts = [MLP(expert_units, activation=activation, dropout=dropout, name=f'expert_{i}')
                        for i in range(num_experts)]
        gate_count = {'per_task': num_tasks, 'shared': 1, None: 0}[gates]
        self.gate_layers = [tf.keras.layers.Dense(num_experts, use_bias=False, name=f'gate_{k}')
                            for k in range(gate_count)]

    def call(self, x, training=None):
        experts = tf.stack([expert(x, training=training) for expert in self.experts], axis=1)    # [B, n, e]
        if self.gates is None:
            return [experts[:, 0]] * self.num_tasks, None
        logits = tf.stack([gate(x) for gate in self.gate_layers], axis=1)                       # [B, G, n]
        if training and self.gate_dropout:
            keep = tf.random.uniform(tf.shape(logits)) >= self.gate_dropout
            keep = tf.logical_or(keep, tf.one_hot(tf.argmax(logits, axis=-1), self.num_experts, on_value=True,
                                                  off_value=False))                            # keep one at least
            logits = tf.where(keep, logits, tf.fill(tf.shape(logits), -1e9))
        weights = tf.nn.softmax(logits, axis=-1)
        if self.gates == 'shared':
            weights = tf.repeat(weights, self.num_tasks, axis=1)                                 # [B, K, n]
        mixtures = tf.einsum('bkn,bne->bke', weights, experts)
        return [mixtures[:, k] for k in range(self.num_tasks)], weights


def gate_entropy(weights):
    """The mean entropy −Σ_i g_i log g_i of gate weights ``[B, K, n]`` (log n: uniform; 0: one expert)."""
    return tf.reduce_mean(-tf.reduce_sum(weights * tf.math.log(tf.maximum(weights, 1e-12)), axis=-1))

"""Shared-bottom, OMoE and MMoE (Ma et al., *Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts*, KDD 2018).

    y_k = h^k(f^k(x)),   f^k(x) = Σ_i g^k(x)_i f_i(x),   g^k(x) = softmax(W_gk x)

over the family's shared input x (:mod:`rec_models.multitask.base`): MMoE has one gate per task, OMoE one gate
for every task, the shared bottom one expert that every tower reads (:class:`~rec_models.layers.MixtureOfExperts`).
The objectives are label roles (``objectives``; the spec's ``label_roles``), each a head of the same name: binary
(log loss, AUC) by default, or regression (squared error) for the paper's synthetic tasks. The first objective is
the primary head. The gate weights are the ``gates`` output (``[B, K, n]``) and their mean entropy the
``gate_entropy`` metric (log n: every expert used alike; 0: one expert per example).

Choice: the gates read the shared input x itself, as the experts do (the paper's W_gk x).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.layers import MixtureOfExperts, gate_entropy
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import AuxiliaryLoss, BinaryTask, Head, RegressionTask

OBJECTIVE_KINDS = ('binary', 'regression')
GATE_ENTROPY = 'gate_entropy'


def objective_heads(objectives, kind):
    """One head per objective role; a click head is judged against the relevance counterfactual too."""
    return tuple(Head(role, role, counterfactual='relevance' if role == 'click' and kind == 'binary' else None)
                 for role in objectives)


@register('shared_bottom', gates=None, num_experts=1, expert_units=(128, 64))
@register('omoe', gates='shared')
@register('mmoe')
class MMoE(MultiTaskModel):
    """MMoE and its two baselines. ``call → {'<role>', '<role>_logits' for each objective, 'probabilities',
    'logits' (the first), 'gates', 'gate_entropy'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        objectives: the label roles of the tasks, the primary first.
        objective_kind: ``'binary'`` or ``'regression'``.
        gates: ``'per_task'`` (MMoE), ``'shared'`` (OMoE) or None (shared bottom).
        num_experts: n.
        expert_units: the widths of each expert's layers.
        tower_units: the widths of each task tower's hidden layers.
        activation, dropout: of the experts and towers.
        gate_dropout: the probability of dropping an expert from a gate in training.
        loss_weights: one weight per objective (default: 1 each).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, objectives=('click', 'satisfaction'),
                 objective_kind='binary', gates='per_task', num_experts=4, expert_units=(64, 32), tower_units=(32,),
                 activation='relu', dropout=0.0, gate_dropout=0.0, loss_weights=None, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        objectives = tuple(objectives)
        self.check_hparams({'objectives': objectives, 'objective_kind': objective_kind, 'loss_weights': loss_weights})
        self.hparams = {**self.bottom_hparams, 'objectives': objectives, 'objective_kind': objective_kind,
                        'gates': gates, 'num_experts': num_experts, 'expert_units': tuple(expert_units),
                        'tower_units': tuple(tower_units), 'activation': activation, 'dropout': dropout,
                        'gate_dropout': gate_dropout, 'loss_weights': loss_weights}
        self.experts = MixtureOfExperts(len(objectives), num_experts, expert_units, gates=gates,
                                        activation=activation, dropout=dropout, gate_dropout=gate_dropout,
                                        name='experts')
        self.towers = [self.tower(tower_units, activation, dropout, f'{role}_tower') for role in objectives]
        weights = loss_weights or (1.0,) * len(objectives)
        if objective_kind == 'binary':
            tasks = [BinaryTask(inputs.label_for(role), head=role, weight=w, auc_thresholds=self.auc_thresholds)
                     for role, w in zip(objectives, weights)]
        else:
            tasks = [RegressionTask(role, label=inputs.label_for(role), predictions=f'{role}_logits', weight=w)
                     for role, w in zip(objectives, weights)]
        gated = gates is not None
        self.set_tasks(*tasks, *([AuxiliaryLoss(GATE_ENTROPY, weight=0.0)] if gated else []))

    @classmethod
    def check_hparams(cls, hparams):
        objectives = tuple(hparams.get('objectives', ('click', 'satisfaction')))
        if not objectives or len(set(objectives)) != len(objectives):
            raise ValueError(f'objectives must name one or more distinct label roles, got {objectives}')
        if hparams.get('objective_kind', 'binary') not in OBJECTIVE_KINDS:
            raise ValueError(f'objective_kind must be one of {OBJECTIVE_KINDS}, got {hparams.get("objective_kind")!r}')
        weights = hparams.get('loss_weights')
        if weights is not None and (len(weights) != len(objectives) or min(weights) < 0):
            raise ValueError(f'loss_weights must give one weight ≥ 0 per objective, got {weights}')

    @classmethod
    def served_heads(cls, hparams=None):
        hparams = hparams or {}
        return objective_heads(tuple(hparams.get('objectives', ('click', 'satisfaction'))),
                               hparams.get('objective_kind', 'binary'))

    def call(self, features, training=False):
        return self.with_heads(self.tower_outputs(features, training))

    def tower_outputs(self, features, training):
        """The towers' logits (the regression objectives' predictions), the gates and their entropy."""
        shared, outputs = self.bottom(features, training=training)
        mixtures, gates = self.experts(shared, training=training)
        for role, tower, mixture in zip(self.hparams['objectives'], self.towers, mixtures):
            logits = tf.squeeze(tower(mixture, training=training), axis=-1)
            outputs[f'{role}_logits'] = logits
            if self.hparams['objective_kind'] == 'regression':
                outputs[role] = logits
        if gates is not None:
            outputs['gates'] = gates
            outputs[GATE_ENTROPY] = gate_entropy(gates)
        return outputs

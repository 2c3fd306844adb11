"""Shared-bottom, OMoE and MMoE: the mixture against its equation, distinct experts, the gates' forms, gate dropout,
and the heads each objective serves."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.layers import MixtureOfExperts, gate_entropy  # noqa: E402
from toy_inputs import INPUTS, _features, _small  # noqa: E402  pylint: disable=wrong-import-order


def test_the_mixture_equals_its_equation_per_task():
    tf.keras.utils.set_random_seed(0)
    layer = MixtureOfExperts(num_tasks=2, num_experts=3, expert_units=(4,), gates='per_task')
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    mixtures, gates = layer(x)
    experts = np.stack([expert(x).numpy() for expert in layer.experts], axis=1)                  # [B, n, e]
    for k, gate in enumerate(layer.gate_layers):
        logits = x @ gate.kernel.numpy()
        g = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)                           # softmax(W_gk x)
        np.testing.assert_allclose(gates[:, k], g, rtol=1e-5)
        np.testing.assert_allclose(mixtures[k], np.einsum('bn,bne->be', g, experts), rtol=1e-5, atol=1e-6)
    assert float(gate_entropy(gates)) == pytest.approx(float(np.mean(-np.sum(gates * np.log(gates), -1))), rel=1e-5)


def test_experts_start_from_distinct_weights():
    tf.keras.utils.set_random_seed(0)
    layer = MixtureOfExperts(num_tasks=2, num_experts=4, expert_units=(8,))
    layer(tf.zeros((1, 5)))
    kernels = [expert.dense_layers[0].kernel.numpy() for expert in layer.experts]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(kernels[i] - kernels[j]).max() > 1e-3, (i, j)


def test_omoe_shares_one_gate_the_shared_bottom_has_none():
    x = tf.random.normal((4, 6))
    mixtures, gates = MixtureOfExperts(3, 2, (4,), gates='shared')(x)
    assert gates.shape == (4, 3, 2)
    np.testing.assert_allclose(gates[:, 0], gates[:, 2])
    mixtures, gates = MixtureOfExperts(2, 1, (4,), gates=None)(x)
    assert gates is None
    np.testing.assert_allclose(mixtures[0], mixtures[1])
    with pytest.raises(ValueError, match='one expert'):
        MixtureOfExperts(2, 3, (4,), gates=None)


def test_gate_dropout_drops_experts_in_training_only_and_keeps_one():
    tf.keras.utils.set_random_seed(1)
    layer = MixtureOfExperts(2, 4, (4,), gate_dropout=0.5)
    x = tf.random.normal((200, 6))
    _, trained = layer(x, training=True)
    _, served = layer(x, training=False)
    dropped = trained.numpy() < 1e-6
    assert 0.35 < dropped.mean() < 0.5   # half of the experts, less the one always kept
    assert np.all((~dropped).sum(axis=-1) >= 1)
    np.testing.assert_allclose(trained.numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(served.numpy() > 0)


@pytest.mark.parametrize('name,gates', [('mmoe', 'per_task'), ('omoe', 'shared'), ('shared_bottom', None)])
def test_each_objective_is_a_served_head(name, gates):
    model = registry.build(name, INPUTS, _small(name))
    outputs = model(_features(), training=False)
    assert model.hparams['gates'] == gates
    assert [h.name for h in model.served_heads(model.hparams)] == ['click', 'satisfaction']
    np.testing.assert_allclose(outputs['probabilities'], outputs['click'])
    np.testing.assert_allclose(outputs['satisfaction'], tf.sigmoid(outputs['satisfaction_logits']), rtol=1e-6)
    assert ('gates' in outputs) == (gates is not None)
    assert {m.name for m in model.metrics} >= {'click_auc', 'satisfaction_auc', 'click_loss', 'satisfaction_loss'}


def test_regression_objectives_and_rejections():
    inputs = INPUTS.__class__(**{**INPUTS.__dict__, 'label_roles': INPUTS.label_roles + (('y1', 'cart'),)})
    model = registry.build('mmoe', inputs, {**_small('mmoe'), 'objectives': ('y1', 'satisfaction'),
                                            'objective_kind': 'regression'})
    outputs = model(_features(), training=False)
    np.testing.assert_allclose(outputs['y1'], outputs['y1_logits'])
    assert {m.name for m in model.metrics} >= {'y1_mse', 'satisfaction_mse'}
    with pytest.raises(ValueError, match='objective_kind'):
        registry.validate('mmoe', {'objective_kind': 'ordinal'})
    with pytest.raises(ValueError, match='loss_weights'):
        registry.validate('mmoe', {'loss_weights': (1.0,)})
    with pytest.raises(KeyError, match='label_roles'):
        registry.build('mmoe', INPUTS, {'objectives': ('click', 'dwell')})

"""What the registry-wide suites do not check of DIEN: the auxiliary loss and its weight, and the variants."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.sequence.behavior import AUX_LOSS, next_behaviour_loss  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

SMALL = {'hidden_units': (8,), 'dropout': 0.0, 'l2': 0.0}


def test_auxiliary_loss_equals_its_equation_with_rolled_negatives():
    rng = np.random.default_rng(0)
    b, length, d = 5, 4, 3
    states = rng.normal(size=(b, length, d)).astype(np.float32)
    keys = rng.normal(size=(b, length, d)).astype(np.float32)
    lengths = np.array([4, 2, 0, 3, 1])
    mask = np.arange(length)[None, :] < lengths[:, None]
    ids = rng.integers(1, 4, size=(b, length))  # few ids: some negatives equal their positive and are dropped
    total, pairs = 0.0, 0
    for i in range(b):
        other = (i - 1) % b  # tf.roll(shift=1): row i holds row i − 1
        for t in range(length - 1):
            if not mask[i, t + 1]:
                continue
            pairs += 1
            total += np.logaddexp(0.0, -states[i, t] @ keys[i, t + 1])              # −log σ(⟨h_t, e_{t+1}⟩)
            if mask[other, t + 1] and ids[other, t + 1] != ids[i, t + 1]:
                total += np.logaddexp(0.0, states[i, t] @ keys[other, t + 1])        # −log(1 − σ(⟨h_t, ê_{t+1}⟩))
    loss = next_behaviour_loss(states, keys, mask, ids)
    assert float(loss) == pytest.approx(total / pairs, rel=1e-5)
    assert float(next_behaviour_loss(states, keys, np.zeros_like(mask), ids)) == 0.0  # no pair: no loss, no NaN


def test_the_auxiliary_loss_is_added_with_its_weight_in_training_only():
    tf.keras.utils.set_random_seed(0)
    features = _features()
    labels = {'click': np.ones(len(features['item_id']), np.float32)}
    model = registry.build('dien', INPUTS, {**SMALL, 'aux_weight': 0.5})
    outputs = model(features, training=True)
    assert outputs[AUX_LOSS].shape == () and float(outputs[AUX_LOSS]) > 0
    assert AUX_LOSS not in model(features, training=False)
    target_only = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels['click'],
                                                                         logits=outputs['logits']))
    np.testing.assert_allclose(model.compute_loss(labels, outputs, features),
                               target_only + 0.5 * outputs[AUX_LOSS], rtol=1e-6)
    without = registry.build('dien', INPUTS, {**SMALL, 'aux_weight': 0.0})
    assert AUX_LOSS not in without(features, training=True)
    with pytest.raises(ValueError, match='aux_weight'):
        registry.build('dien', INPUTS, {'aux_weight': -1.0})


def test_fit_reports_the_auxiliary_loss_and_evaluation_does_not():
    features = _features()
    labels = (features['item_id'] % 2).astype(np.float32)
    model = registry.build('dien', INPUTS, SMALL)
    model.compile(optimizer='adam')
    history = model.fit(features, labels, validation_data=(features, labels), epochs=1, verbose=0)
    assert AUX_LOSS in history.history and f'val_{AUX_LOSS}' not in history.history


@pytest.mark.parametrize('name,variant', [('dien', 'augru'), ('dien_aigru', 'aigru'), ('dien_agru', 'agru')])
def test_variants_are_registered_with_their_evolving_gru(name, variant):
    model = registry.build(name, INPUTS, SMALL)
    model(_features())
    assert model.evolution.gru.variant == variant and model.extractor.variant == 'gru'
    # The extractor's state has the width of a behaviour's keys, so that ⟨h_t, e_{t+1}⟩ is defined.
    assert model.extractor.units == model.key_dim == sum(f.embedding_dim for f in model.keyed)

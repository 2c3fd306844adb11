"""What the registry-wide suites do not check of DMIN: its refiner sees no later behaviour, its heads are pooled
by their own target-aware attention, and its auxiliary loss is DIEN's on the refined behaviours."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.sequence.behavior import AUX_LOSS, next_behaviour_loss  # noqa: E402
from toy_inputs import INPUTS, L, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'attention_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'refiner_heads': 2,
           'interest_heads': 3}


def _model():
    tf.keras.utils.set_random_seed(0)
    model = registry.build('dmin', INPUTS, HPARAMS)
    model(_features())
    return model


def test_each_interest_head_has_its_own_attention_over_the_valid_steps():
    model = _model()
    features = _features()
    weights = model(features)['interest_weights'].numpy()
    assert weights.shape == (len(features['item_id']), 3, L)
    padded = np.arange(L)[None, :] >= features['hist_length'][:, None]
    assert np.all(weights.transpose(1, 0, 2)[:, padded] == 0)
    assert not np.allclose(weights[:, 0], weights[:, 1])
    assert len({id(p.unit) for p in model.interest_pooling}) == 3


def test_the_auxiliary_loss_is_diens_on_the_causally_refined_behaviours():
    model = _model()
    features = _features()
    outputs = model(features, training=True)
    keys, _, side = model.behaviours(model.embedding(features))
    mask = model.sequence_mask(features, model.keyed[0])
    refined, attention = model.refiner(tf.concat([keys, side], axis=-1), mask)
    assert np.all(np.triu(attention.numpy(), k=1) == 0)  # z_t sees no later behaviour
    expected = next_behaviour_loss(refined, keys, mask, features['hist_item_id'])
    assert float(outputs[AUX_LOSS]) == pytest.approx(float(expected), rel=1e-5)
    assert AUX_LOSS not in registry.build('dmin', INPUTS, {**HPARAMS, 'aux_weight': 0.0})(features, training=True)

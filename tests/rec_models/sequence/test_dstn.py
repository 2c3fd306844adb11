"""What the registry-wide suites do not check of DSTN: its auxiliary groups, and how each variant weighs the three
kinds of auxiliary ads."""

import dataclasses
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'attention_units': 6}
KINDS = {'context': 'context_length', 'clicked': 'hist_length', 'unclicked': 'unclicked_length'}


@pytest.mark.parametrize('missing', ['page_context', 'unclicked'])
def test_needs_its_auxiliary_groups(missing):
    inputs = dataclasses.replace(INPUTS, auxiliary=tuple(g for g in INPUTS.auxiliary if g.name != missing))
    with pytest.raises(ValueError, match=f'auxiliary.{missing}'):
        registry.build('dstn', inputs)


def test_interactive_weights_depend_on_the_target_and_are_not_normalised():
    model = registry.build('dstn', INPUTS, HPARAMS)
    features = _features()
    outputs = model(features)
    other = model({**features, 'item_id': (features['item_id'] + 1) % 29 + 1})
    for kind, length in KINDS.items():
        weights = outputs[f'{kind}_weights'].numpy()
        padded = np.arange(weights.shape[1])[None] >= features[length][:, None]
        np.testing.assert_array_equal(weights[padded], 0.0)
        assert np.all(weights[~padded] > 0)
        assert not np.allclose(weights.sum(axis=1)[features[length] > 0], 1.0)
        assert not np.allclose(other[f'{kind}_weights'].numpy()[~padded], weights[~padded])


def test_self_attention_weights_ignore_the_target_and_sum_to_one():
    model = registry.build('dstn_self_attention', INPUTS, HPARAMS)
    features = _features()
    outputs = model(features)
    other = model({**features, 'item_id': (features['item_id'] + 1) % 29 + 1})
    for kind, length in KINDS.items():
        weights = outputs[f'{kind}_weights'].numpy()
        np.testing.assert_allclose(weights.sum(axis=1)[features[length] > 0], 1.0, rtol=1e-5)
        np.testing.assert_allclose(other[f'{kind}_weights'], weights, rtol=1e-6)


def test_every_kind_of_auxiliary_ad_moves_the_prediction():
    features = _features()
    for name in ('dstn', 'dstn_pooling', 'dstn_self_attention'):
        model = registry.build(name, INPUTS, HPARAMS)
        before = model(features)['logits'].numpy()
        for ids in ('context_item_id', 'hist_item_id', 'unclicked_item_id'):
            changed = np.where(features[ids] > 0, features[ids] % 29 + 1, 0)
            assert not np.allclose(model({**features, ids: changed})['logits'].numpy(), before), (name, ids)

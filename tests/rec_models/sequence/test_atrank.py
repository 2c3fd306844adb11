"""What the registry-wide suites do not check of ATRank: its query behaviours, one latent space for both kinds of
behaviour, and the target's attention over both."""

import dataclasses
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, L, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'transformer_dropout': 0.0, 'latent_dim': 8,
           'spaces': 2, 'space_dim': 4}


def test_needs_the_query_behaviours():
    inputs = dataclasses.replace(INPUTS, auxiliary=tuple(g for g in INPUTS.auxiliary if g.name != 'search'))
    with pytest.raises(ValueError, match='auxiliary.search'):
        registry.build('atrank', inputs)


def test_the_target_attends_over_the_item_and_the_query_behaviours():
    model = registry.build('atrank', INPUTS, HPARAMS)
    features = _features()
    weights = model(features)['attention_weights'].numpy()
    queries = weights.shape[1] - L
    valid = np.concatenate([np.arange(L)[None] < features['hist_length'][:, None],
                            np.arange(queries)[None] < features['query_history_length'][:, None]], axis=1)
    np.testing.assert_array_equal(weights[~valid], 0.0)
    np.testing.assert_allclose(weights.sum(axis=1)[valid.any(axis=1)], 1.0, rtol=1e-5)
    both = (features['hist_length'] > 0) & (features['query_history_length'] > 0)
    assert both.any() and np.all(weights[both, L:].sum(axis=1) > 0)


def test_queries_and_their_own_time_embedding_move_the_prediction():
    model = registry.build('atrank', INPUTS, HPARAMS)
    features = _features()
    before = model(features)['logits'].numpy()
    for name, vocab in (('hist_query', 9), ('hist_query_time_gap', 8)):
        changed = np.where(features[name] > 0, features[name] % (vocab - 1) + 1, 0)
        assert not np.allclose(model({**features, name: changed})['logits'].numpy(), before), name
    tables = model.embedding.model_inputs.tables
    assert 'hist_query_time_gap' in tables and 'hist_time_gap' in tables   # a time table per group
    assert 'query' not in {f.name for f in model.embedding.model_inputs.fields}   # the request's query: not read

"""What the registry-wide suites do not check of DUPN: attention driven by the user and the query but not by the
candidate, and the user representation computed once per request in ``rank``."""

import dataclasses
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'lstm_units': 6, 'attention_units': (5,)}


def test_needs_the_request_query():
    inputs = dataclasses.replace(INPUTS, auxiliary=tuple(g for g in INPUTS.auxiliary if g.name != 'search'))
    with pytest.raises(ValueError, match='auxiliary.search'):
        registry.build('dupn', inputs)


def test_attention_follows_the_query_and_the_user_not_the_candidate():
    model = registry.build('dupn', INPUTS, HPARAMS)
    features = _features()
    weights = model(features)['attention_weights'].numpy()
    used = features['hist_length'] > 0
    np.testing.assert_allclose(weights.sum(axis=1)[used], 1.0, rtol=1e-5)
    candidate = model({**features, 'item_id': features['item_id'] % 29 + 1, 'category': features['category'] % 5 + 1})
    np.testing.assert_allclose(candidate['attention_weights'], weights, rtol=1e-6)
    assert not np.allclose(candidate['logits'], model(features)['logits'])
    for driver in ('query', 'gender'):
        vocab = INPUTS.auxiliary_group('search').fields[0].vocab_size if driver == 'query' else 3
        moved = model({**features, driver: features[driver] % (vocab - 1) + 1})['attention_weights'].numpy()
        assert not np.allclose(moved[used], weights[used]), driver


def test_rank_equals_call_on_the_joined_examples():
    model = registry.build('dupn', INPUTS, HPARAMS)
    features = _features()
    candidates = {name: tf.constant(features[name]) for name in ('item_id', 'category', 'price')}
    context = {name: tf.constant(value[:1]) for name, value in features.items() if name not in candidates}
    joined = {**{name: np.repeat(value[:1], len(features['item_id']), axis=0) for name, value in features.items()},
              **{name: features[name] for name in candidates}}
    np.testing.assert_allclose(model.rank(context, candidates)['probabilities'],
                               model(joined)['probabilities'], rtol=1e-5, atol=1e-6)

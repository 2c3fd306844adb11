"""What the registry-wide suites do not check of DSIN: its need for sessions, the bias encoding and the two
attentions over the non-empty sessions."""

import dataclasses
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, K, T, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'transformer_dropout': 0.0, 'heads': 2, 'head_dim': 4}


def test_needs_the_session_layout():
    with pytest.raises(ValueError, match='behavior.sessions'):
        registry.build('dsin', dataclasses.replace(INPUTS, sessions=None))


def test_attention_over_the_non_empty_sessions_and_the_bias_encoding():
    model = registry.build('dsin', INPUTS, HPARAMS)
    features = _features()
    outputs = model(features)
    used = features['session_lengths'] > 0
    for name in ('session_attention', 'interaction_attention'):
        weights = outputs[name].numpy()
        assert weights.shape == (len(used), K)
        np.testing.assert_array_equal(weights[~used], 0.0)
        np.testing.assert_allclose(weights.sum(axis=1)[used.any(axis=1)], 1.0, rtol=1e-5)
    width = sum(f.embedding_dim for f in INPUTS.sessions.fields)
    assert [w.shape for w in model.bias_encoding] == [(K,), (T,), (width,)]
    before = model(features)['logits'].numpy()
    model.bias_encoding[1].assign(np.arange(T, dtype=np.float32))  # BE(k, t, c) moves the session queries
    assert not np.allclose(model(features)['logits'].numpy(), before)
    assert all(f.kind != 'sequence' for f in model.embedding.model_inputs.fields)  # flat sequences: not looked up

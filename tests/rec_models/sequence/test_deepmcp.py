"""What the registry-wide suites do not check of DeepMCP: the skip-gram correlation loss, the matching loss and
their weights, and that serving runs the prediction subnet only."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.sequence.behavior import AUX_LOSS  # noqa: E402
from rec_models.sequence.deepmcp import MATCH_LOGITS  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'hidden_units': (8,), 'l2': 0.0, 'dropout': 0.0, 'tower_units': (8, 4), 'window': 2, 'negatives': 2}


def test_correlation_loss_is_skip_gram_with_in_batch_negatives():
    rng = np.random.default_rng(0)
    b, length, d = 5, 6, 3
    ads = rng.normal(size=(b, length, d)).astype(np.float32)
    lengths = np.array([6, 3, 0, 1, 4])
    mask = np.arange(length)[None, :] < lengths[:, None]
    ids = rng.integers(1, 4, size=(b, length))
    total, pairs = 0.0, 0
    for i in range(b):
        for t in range(lengths[i]):
            for offset in (-2, -1, 1, 2):
                if not 0 <= t + offset < lengths[i]:
                    continue
                pairs += 1
                total += np.logaddexp(0.0, -ads[i, t] @ ads[i, t + offset])
                for shift in (1, 2):
                    other = (i - shift) % b
                    if mask[other, t] and ids[other, t] != ids[i, t]:
                        total += np.logaddexp(0.0, ads[i, t] @ ads[other, t])
    model = registry.build('deepmcp', INPUTS, HPARAMS)
    assert float(model.correlation_loss(ads, mask, ids)) == pytest.approx(total / pairs, rel=1e-5)


def test_joint_loss_weights_and_a_serving_graph_without_the_auxiliary_subnets():
    tf.keras.utils.set_random_seed(0)
    features = _features()
    labels = {'click': features['click'].astype(np.float32)}
    model = registry.build('deepmcp', INPUTS, {**HPARAMS, 'match_weight': 0.3, 'correlation_weight': 0.7})
    outputs = model(features, training=True)
    assert set(outputs) >= {MATCH_LOGITS, AUX_LOSS} and not set(model(features)) & {MATCH_LOGITS, AUX_LOSS}
    target = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels['click'], logits=outputs['logits']))
    match = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels['click'],
                                                                   logits=outputs[MATCH_LOGITS]))
    np.testing.assert_allclose(model.compute_loss(labels, outputs, features),
                               target + 0.3 * match + 0.7 * outputs[AUX_LOSS], rtol=1e-6)
    assert np.all(np.abs(outputs[MATCH_LOGITS]) <= 4 + 1e-5)  # tanh towers of width 4 bound v_uᵀv_a
    model.compile(optimizer='adam')
    history = model.fit(features, labels, validation_data=(features, labels), epochs=1, verbose=0)
    assert {'match_loss', 'aux_loss'} <= set(history.history) and 'val_match_loss' not in history.history

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.cenet import CENetFieldAttention  # noqa: E402

N, K = 4, 3
EMBEDDINGS = np.random.default_rng(0).normal(size=(5, N, N, K)).astype(np.float32)


def _built(**kwargs):
    layer = CENetFieldAttention(**kwargs)
    layer(EMBEDDINGS)
    rng = np.random.default_rng(1)  # non-zero biases so that every term of the reference is exercised
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


def _reference(layer, embeddings, sigma2):
    """Compose with the 1×1 kernel vector by vector, then the two fully connected layers, then the re-weighting."""
    w_c, b_c = layer.compose.kernel.numpy().reshape(K), layer.compose.bias.numpy()[0]
    w_1, b_1 = layer.squeeze.kernel.numpy(), layer.squeeze.bias.numpy()
    w_2, b_2 = layer.excite.kernel.numpy(), layer.excite.bias.numpy()
    batch = embeddings.shape[0]
    scores = np.zeros((batch, N, N), np.float32)
    weighted = np.zeros_like(embeddings)
    for b in range(batch):
        d = np.array([sum(w_c[f] * embeddings[b, i, j, f] for f in range(K)) + b_c
                      for i in range(N) for j in range(N)])  # D = [DV_1, …, DV_n]
        hidden = np.maximum(d @ w_1 + b_1, 0.0)
        s = sigma2(hidden @ w_2 + b_2).reshape(N, N)
        scores[b] = s
        for i in range(N):
            for j in range(N):
                weighted[b, i, j] = s[i, j] * embeddings[b, i, j]
    return weighted, scores


@pytest.mark.parametrize('score_activation, sigma2', [('relu', lambda x: np.maximum(x, 0.0)),
                                                      ('sigmoid', lambda x: 1 / (1 + np.exp(-x)))])
def test_equals_loop_reference(score_activation, sigma2):
    layer = _built(reduction=2, score_activation=score_activation)
    weighted, scores = layer(EMBEDDINGS, return_scores=True)
    assert weighted.shape == (5, N, N, K) and scores.shape == (5, N, N)
    assert layer.squeeze.units == N * N // 2
    expected_weighted, expected_scores = _reference(layer, EMBEDDINGS, sigma2)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weighted, expected_weighted, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(EMBEDDINGS), weighted)


def test_scores_depend_on_the_input():
    layer = _built(score_activation='sigmoid')
    _, scores = layer(EMBEDDINGS, return_scores=True)
    _, other = layer(EMBEDDINGS[::-1], return_scores=True)
    assert np.abs(scores.numpy() - other.numpy()[::-1]).max() < 1e-6
    assert np.abs(scores.numpy()[0] - scores.numpy()[1]).max() > 1e-3


def test_gradients_reach_every_weight():
    layer = _built(reduction=2, score_activation='sigmoid')
    embeddings = tf.constant(EMBEDDINGS)
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        loss = tf.reduce_sum(tf.square(layer(embeddings)))
    gradients = tape.gradient(loss, layer.trainable_weights + [embeddings])
    assert len(gradients) == 7
    for gradient in gradients:
        assert gradient is not None and np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).max() > 0


def test_config_round_trip_and_validation():
    layer = CENetFieldAttention.from_config(CENetFieldAttention(reduction=3, score_activation='sigmoid').get_config())
    assert (layer.reduction, layer.score_activation) == (3, 'sigmoid')
    with pytest.raises(ValueError, match=r'\[B, n, n, k\]'):
        layer(EMBEDDINGS[:, :, :2])

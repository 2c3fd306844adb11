import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402

from rec_models.layers.lstm import BidirectionalLSTM  # noqa: E402

B, L, D, U = 4, 5, 3, 6
MASK = np.arange(L)[None, :] < np.array([5, 3, 1, 0])[:, None]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _inputs(seed=0):
    return np.random.default_rng(seed).normal(size=(B, L, D)).astype(np.float32)


def _layer():
    layer = BidirectionalLSTM(U)
    layer(_inputs(), MASK)
    rng = np.random.default_rng(3)
    for weight in layer.weights:  # peepholes start at 0: randomise them too, so that they are checked
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    return layer


def _unrolled(lstm, steps):
    """The seed's LSTM equations over the given input vectors, one step at a time."""
    w, u, p, b = (v.numpy() for v in (lstm.input_kernel, lstm.recurrent_kernel, lstm.peepholes, lstm.bias))
    h, c, outputs = np.zeros(U), np.zeros(U), []
    for x in steps:
        z = x @ w + h @ u + b
        i = _sigmoid(z[:U] + p[0] * c)
        f = _sigmoid(z[U:2 * U] + p[1] * c)
        c = f * c + i * np.tanh(z[2 * U:3 * U])
        o = _sigmoid(z[3 * U:] + p[2] * c)
        h = o * np.tanh(c)
        outputs.append(h)
    return outputs


def test_both_directions_equal_the_unrolled_equations_over_the_valid_steps():
    layer = _layer()
    inputs = _inputs()
    outputs = layer(inputs, MASK).numpy()
    for example in range(B):
        valid = inputs[example][MASK[example]]
        forward = _unrolled(layer.forward, valid)
        backward = _unrolled(layer.backward, valid[::-1])[::-1]
        for t in range(len(valid)):
            np.testing.assert_allclose(outputs[example, t], np.concatenate([forward[t], backward[t]]),
                                       rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(outputs[example, len(valid):], 0.0)


def test_padding_never_changes_the_outputs():
    layer = _layer()
    inputs = _inputs()
    noisy = np.where(MASK[..., None], inputs, 7.0).astype(np.float32)
    np.testing.assert_allclose(layer(noisy, MASK), layer(inputs, MASK), rtol=1e-6)

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models.layers.gru import VARIANTS, InterestGRU  # noqa: E402

B, L, D, H = 4, 5, 3, 6
LENGTHS = np.array([5, 3, 1, 0])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(B, L, D)).astype(np.float32)
    mask = np.arange(L)[None, :] < LENGTHS[:, None]
    attention = rng.uniform(size=(B, L)).astype(np.float32)
    return inputs, mask, attention


def _layer(variant, inputs, mask, attention):
    layer = InterestGRU(H, variant)
    layer(inputs, mask, None if variant == 'gru' else attention)
    rng = np.random.default_rng(7)
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    return layer


def _unrolled(layer, inputs, mask, attention):
    """The seed's equations, one example and one step at a time."""
    w, u, b = (v.numpy() for v in (layer.input_kernel, layer.recurrent_kernel, layer.bias))
    w_u, w_r, w_h = np.split(w, 3, axis=1)
    u_u, u_r, u_h = np.split(u, 3, axis=1)
    b_u, b_r, b_h = np.split(b, 3)
    outputs, finals = np.zeros((B, L, H)), np.zeros((B, H))
    for example in range(B):
        h = np.zeros(H)
        for t in range(L):
            if mask[example, t]:
                i, a = inputs[example, t], attention[example, t]
                if layer.variant == 'aigru':
                    i = a * i
                update = _sigmoid(i @ w_u + h @ u_u + b_u)
                reset = _sigmoid(i @ w_r + h @ u_r + b_r)
                candidate = np.tanh(i @ w_h + reset * (h @ u_h) + b_h)
                if layer.variant == 'agru':
                    update = a
                elif layer.variant == 'augru':
                    update = a * update
                h = (1 - update) * h + update * candidate
            outputs[example, t] = h
        finals[example] = h
    return outputs, finals


@pytest.mark.parametrize('variant', VARIANTS)
def test_equals_the_hand_unrolled_equations(variant):
    inputs, mask, attention = _batch()
    layer = _layer(variant, inputs, mask, attention)
    outputs, final = layer(inputs, mask, None if variant == 'gru' else attention)
    expected_outputs, expected_final = _unrolled(layer, inputs, mask, attention)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final, expected_final, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(final[3], 0.0)  # an empty sequence stays in the initial state


@pytest.mark.parametrize('variant', VARIANTS)
def test_padding_never_changes_the_outputs(variant):
    inputs, mask, attention = _batch()
    layer = _layer(variant, inputs, mask, attention)
    noisy_inputs = np.where(mask[..., None], inputs, 50.0).astype(np.float32)
    noisy_attention = np.where(mask, attention, 0.9).astype(np.float32)
    clean = layer(inputs, mask, None if variant == 'gru' else attention)
    noisy = layer(noisy_inputs, mask, None if variant == 'gru' else noisy_attention)
    np.testing.assert_allclose(noisy[1], clean[1], rtol=1e-6)
    np.testing.assert_allclose(noisy[0].numpy()[mask], clean[0].numpy()[mask], rtol=1e-6)


def test_attention_steers_the_attentional_variants():
    inputs, mask, attention = _batch()
    for variant in VARIANTS[1:]:
        layer = _layer(variant, inputs, mask, attention)
        _, low = layer(inputs, mask, attention * 0.1)
        _, high = layer(inputs, mask, attention)
        assert np.abs(high.numpy()[:3] - low.numpy()[:3]).max() > 1e-3, variant
    augru = _layer('augru', inputs, mask, attention)
    _, off = augru(inputs, mask, np.zeros_like(attention))
    np.testing.assert_allclose(off, 0.0, atol=1e-7)  # a_t = 0 everywhere: no step updates the state


def test_attention_is_required_exactly_by_the_attentional_variants():
    inputs, mask, attention = _batch()
    with pytest.raises(ValueError, match='needs attention'):
        InterestGRU(H, 'augru')(inputs, mask)
    with pytest.raises(ValueError, match='takes no attention'):
        InterestGRU(H, 'gru')(inputs, mask, attention)
    with pytest.raises(ValueError, match='variant'):
        InterestGRU(H, 'lstm')

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rec_models.layers.transformer import MultiHeadSelfAttention, TransformerBlock  # noqa: E402

B, L, D, HEADS, HEAD_DIM = 3, 4, 5, 2, 3
MASK = np.arange(L)[None, :] < np.array([4, 2, 0])[:, None]


def _sequence(seed=0):
    return np.random.default_rng(seed).normal(size=(B, L, D)).astype(np.float32)


def _block(activation='leaky_relu'):
    block = TransformerBlock(HEADS, HEAD_DIM, ffn_units=7, dropout=0.5, activation=activation)
    block(_sequence(), MASK)
    rng = np.random.default_rng(1)
    for weight in block.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    return block


def _layer_norm(x, gamma, beta):
    mean, var = x.mean(), x.var()
    return (x - mean) / np.sqrt(var + 1e-6) * gamma + beta


def _loop(block, sequence):
    """BST eq. 3–5, one example, one head and one step at a time."""
    attention = block.attention
    q, k, v, o = (w.numpy() for w in (attention.query, attention.key, attention.value, attention.output_kernel))
    w1, b1 = (w.numpy() for w in block.ffn_in.weights)
    w2, b2 = (w.numpy() for w in block.ffn_out.weights)
    g1, beta1 = (w.numpy() for w in block.attention_norm.weights)
    g2, beta2 = (w.numpy() for w in block.ffn_norm.weights)
    act = (lambda x: np.where(x > 0, x, 0.2 * x)) if block.activation == 'leaky_relu' else (lambda x: np.maximum(x, 0))
    out = np.zeros((B, L, D))
    for b in range(B):
        valid = np.flatnonzero(MASK[b])
        for m in valid:
            heads = []
            for h in range(HEADS):
                cols = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
                query = sequence[b, m] @ q[:, cols]
                scores = np.array([query @ (sequence[b, n] @ k[:, cols]) / np.sqrt(HEAD_DIM) for n in valid])
                weights = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
                heads.append(sum(w * (sequence[b, n] @ v[:, cols]) for w, n in zip(weights, valid)))
            hidden = _layer_norm(sequence[b, m] + np.concatenate(heads) @ o, g1, beta1)
            out[b, m] = _layer_norm(hidden + act(hidden @ w1 + b1) @ w2 + b2, g2, beta2)
    return out


@pytest.mark.parametrize('activation', ['leaky_relu', 'relu'])
def test_equals_the_equations_over_valid_steps(activation):
    block = _block(activation)
    sequence = _sequence()
    outputs, attention = block(sequence, MASK, training=False)
    np.testing.assert_allclose(outputs, _loop(block, sequence), rtol=1e-4, atol=1e-4)
    assert attention.shape == (B, HEADS, L, L)
    np.testing.assert_allclose(attention.numpy()[0].sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(attention.numpy()[1][..., 2:] == 0)  # padded keys get no attention
    np.testing.assert_array_equal(outputs.numpy()[2], 0.0)  # an empty sequence gives zeros


def test_padding_never_changes_the_outputs_and_dropout_acts_in_training_only():
    block = _block()
    sequence = _sequence()
    noisy = np.where(MASK[..., None], sequence, 9.0).astype(np.float32)
    clean = block(sequence, MASK, training=False)[0].numpy()
    np.testing.assert_allclose(block(noisy, MASK, training=False)[0], clean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(block(sequence, MASK)[0], clean, rtol=1e-6)
    assert not np.allclose(block(sequence, MASK, training=True)[0].numpy()[0], clean[0])
    with pytest.raises(ValueError, match='activation'):
        TransformerBlock(activation='swish')


def test_multi_head_attention_heads_with_another_scale_and_width():
    layer = MultiHeadSelfAttention(HEADS, HEAD_DIM, output_dim=7, scale=np.sqrt(D))
    sequence = _sequence()
    outputs, _ = layer(sequence, MASK)
    assert outputs.shape == (B, L, 7)
    heads, attention = (t.numpy() for t in layer(sequence, MASK, joined=False))
    q, k, v = (w.numpy() for w in (layer.query, layer.key, layer.value))
    for h in range(HEADS):
        cols = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
        scores = (sequence[0] @ q[:, cols]) @ (sequence[0] @ k[:, cols]).T / np.sqrt(D)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(attention[0, h], weights, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(heads[0, h], weights @ (sequence[0] @ v[:, cols]), rtol=1e-4, atol=1e-5)


def test_causal_attention_sees_no_later_step():
    layer = MultiHeadSelfAttention(HEADS, HEAD_DIM, causal=True)
    sequence = _sequence()
    _, attention = layer(sequence, MASK)
    assert np.all(np.triu(attention.numpy()[0, 0], k=1) == 0)
    changed = sequence.copy()
    changed[:, -1] += 5.0  # the last step changes: no earlier step's output may move
    np.testing.assert_allclose(layer(changed, MASK)[0].numpy()[:, :-1], layer(sequence, MASK)[0].numpy()[:, :-1],
                               rtol=1e-5, atol=1e-6)

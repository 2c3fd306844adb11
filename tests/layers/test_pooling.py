import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.pooling import MaskedMeanPooling, MaskedSumPooling  # noqa: E402


def _batch():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    return values, mask


def test_sum_and_mean_use_valid_steps_only():
    values, mask = _batch()
    expected_sum = (values * mask[..., None]).sum(axis=1)
    np.testing.assert_allclose(MaskedSumPooling()(values, mask=mask), expected_sum, rtol=1e-6)
    expected_mean = expected_sum / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    np.testing.assert_allclose(MaskedMeanPooling()(values, mask=mask), expected_mean, rtol=1e-6)


def test_padded_values_are_ignored_and_empty_sequences_pool_to_zero():
    values, mask = _batch()
    noisy = np.where(mask[..., None], values, 1e6).astype(np.float32)
    for pooling in (MaskedSumPooling(), MaskedMeanPooling()):
        clean = pooling(values, mask=mask).numpy()
        np.testing.assert_allclose(pooling(noisy, mask=tf.constant(mask)), clean, rtol=1e-6)
        np.testing.assert_array_equal(clean[2], 0.0)

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import itertools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.layers.bi_interaction import BiInteractionPooling  # noqa: E402
from rec_models.layers.interaction import FMSecondOrder  # noqa: E402


def _pairwise_loop(fields):
    """Σ_{i<j} e_i ⊙ e_j, one pair at a time."""
    pooled = np.zeros((fields.shape[0], fields.shape[2]))
    for i, j in itertools.combinations(range(fields.shape[1]), 2):
        pooled += fields[:, i] * fields[:, j]
    return pooled


@pytest.mark.parametrize('num_fields', [1, 2, 3, 7])
def test_equals_the_pairwise_loop(num_fields):
    fields = np.random.default_rng(num_fields).normal(size=(5, num_fields, 4)).astype(np.float32)
    pooled = BiInteractionPooling()(fields)
    assert pooled.shape == (5, 4)
    np.testing.assert_allclose(pooled, _pairwise_loop(fields), rtol=1e-5, atol=1e-5)


def test_summed_over_k_is_fm_second_order():
    fields = np.random.default_rng(1).normal(size=(5, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(tf.reduce_sum(BiInteractionPooling()(fields), axis=1), FMSecondOrder()(fields),
                               rtol=1e-5, atol=1e-5)


def test_a_zero_field_takes_part_in_no_pair():
    fields = np.random.default_rng(2).normal(size=(5, 4, 3)).astype(np.float32)
    with_zero = np.concatenate([fields[:, :2], np.zeros((5, 1, 3), np.float32), fields[:, 2:]], axis=1)
    np.testing.assert_allclose(BiInteractionPooling()(with_zero), BiInteractionPooling()(fields), rtol=1e-5,
                               atol=1e-6)


def test_gradient_is_the_sum_of_the_other_fields():
    fields = tf.constant(np.random.default_rng(3).normal(size=(2, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(fields)
        total = tf.reduce_sum(BiInteractionPooling()(fields))
    gradient = tape.gradient(total, fields).numpy()  # ∂/∂e_i Σ_{i<j} ⟨e_i, e_j⟩ = Σ_{j≠i} e_j
    expected = fields.numpy().sum(axis=1, keepdims=True) - fields.numpy()
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    layer = BiInteractionPooling(name='bi')
    assert BiInteractionPooling.from_config(layer.get_config()).name == 'bi'

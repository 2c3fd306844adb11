import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import itertools  # noqa: E402

import numpy as np  # noqa: E402

from rec_models.layers.interaction import FMFirstOrder, FMSecondOrder  # noqa: E402


def test_second_order_equals_explicit_pairwise_sum():
    fields = np.random.default_rng(0).normal(size=(5, 7, 4)).astype(np.float32)
    explicit = sum(np.sum(fields[:, i] * fields[:, j], axis=-1) for i, j in itertools.combinations(range(7), 2))
    np.testing.assert_allclose(FMSecondOrder()(fields), explicit, rtol=1e-4, atol=1e-5)


def test_first_order_is_bias_plus_sum_of_terms():
    terms = np.random.default_rng(1).normal(size=(5, 7, 1)).astype(np.float32)
    layer = FMFirstOrder()
    layer(terms)
    layer.bias.assign(0.5)
    np.testing.assert_allclose(layer(terms), 0.5 + terms.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(layer(terms[..., 0]), 0.5 + terms.sum(axis=(1, 2)), rtol=1e-5)

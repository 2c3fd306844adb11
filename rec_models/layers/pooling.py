"""Masked pooling of a behaviour sequence into one vector.

For a sequence of embeddings ``e_1 … e_L`` (``[B, L, d]``) with a validity mask ``m_j`` (``[B, L]``):

    sum pooling:   u = Σ_j m_j · e_j
    mean pooling:  u = Σ_j m_j · e_j / max(Σ_j m_j, 1)

This is the pooling layer of the Embedding&MLP base model of the DIN paper (§4.2): a fixed-length user
vector that ignores the candidate ad. An empty sequence pools to the zero vector.
"""

import tensorflow as tf


def _masked_sum(values, mask):
    """Σ_j m_j · e_j over axis 1, and the number of valid steps as ``[B, 1]``."""
    weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
    return tf.reduce_sum(values * weights, axis=1), tf.reduce_sum(weights, axis=1)


class MaskedSumPooling(tf.keras.layers.Layer):
    """u = Σ_j m_j · e_j: ``[B, L, d]`` and a ``[B, L]`` mask → ``[B, d]``."""

    def call(self, values, mask):
        return _masked_sum(values, mask)[0]


class MaskedMeanPooling(tf.keras.layers.Layer):
    """u = Σ_j m_j · e_j / max(Σ_j m_j, 1): ``[B, L, d]`` and a ``[B, L]`` mask → ``[B, d]``."""

    def call(self, values, mask):
        total, count = _masked_sum(values, mask)
        return total / tf.maximum(count, 1.0)

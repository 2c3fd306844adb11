"""Initializer helpers shared by the layers."""

import tensorflow as tf


def fresh(initializer):
    """A new instance of ``initializer``: reusing one seeded instance would give same-shaped weights the same
    values (e.g. W_Q = W_K = W_V, or two equal embedding tables)."""
    return tf.keras.initializers.get(tf.keras.initializers.serialize(initializer))

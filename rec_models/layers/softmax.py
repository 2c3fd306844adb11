"""Softmax over the valid entries of the last axis, for attention over padded sequences and masked pairs."""

import tensorflow as tf


def masked_softmax(scores, valid):
    """Softmax of ``scores`` over the entries where ``valid`` (1/0 or bool, same shape) is set; an all-invalid row
    gives zeros, and invalid entries get weight 0 whatever their score."""
    valid = tf.cast(valid, scores.dtype)
    largest = tf.reduce_max(tf.where(valid > 0, scores, scores.dtype.min), axis=-1, keepdims=True)
    shifted = scores - tf.stop_gradient(largest)                                           # softmax is shift-free
    exponentials = tf.exp(tf.where(valid > 0, shifted, 0.0)) * valid
    return tf.math.divide_no_nan(exponentials, tf.reduce_sum(exponentials, axis=-1, keepdims=True))

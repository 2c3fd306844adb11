"""The sampled-softmax task of YouTube DNN (Covington et al., *Deep Neural Networks for YouTube Recommendations*,
RecSys 2016, §3.1): extreme multiclass classification over the item vocabulary, trained on a sample of negatives.

    P(w_t = i | U, C) = e^{v_i·u} / Σ_{j ∈ V} e^{v_j·u}

approximated, as the paper does, by a softmax over the positive and ``num_sampled`` negatives drawn from a
proposal Q, each logit corrected by −log Q(j) (importance weighting) and accidental hits (a sampled negative equal
to the positive) removed: ``tf.nn.sampled_softmax_loss``. The model supplies the output embeddings v ``[V, d]``
and biases ``[V]`` of the whole vocabulary (``item_table``, ``item_biases``) and the positives' ids.

Choice: Q is TensorFlow's log-uniform (Zipfian) sampler over the ids, which fits vocabularies sorted by
decreasing frequency (Transform's are); the paper does not name its proposal. Rows whose label is 0 take no part.
The metrics are :class:`~rec_models.tasks.retrieval.RetrievalTask`'s (full ranking, in evaluation).
"""

from typing import Optional, Sequence

import tensorflow as tf

from rec_models.tasks.retrieval import QUERY, TOP_KS, RetrievalTask

ITEM_TABLE = 'item_table'
ITEM_BIASES = 'item_biases'
POSITIVE_IDS = 'positive_ids'


def sampled_softmax_outputs(table, biases, positive_ids) -> dict:
    """The outputs a :class:`SampledSoftmaxTask` reads: the output embeddings ``[V, d]`` and biases ``[V]`` of the
    whole vocabulary and the rows' positive ids."""
    return {ITEM_TABLE: table, ITEM_BIASES: biases, POSITIVE_IDS: tf.cast(positive_ids, tf.int64)}


class SampledSoftmaxTask(RetrievalTask):
    """Sampled softmax over the item vocabulary (module docstring).

    Args:
        label: the positive label column.
        num_sampled: negatives a batch (shared by its rows, as ``tf.nn.sampled_softmax_loss`` draws them).
        num_classes: the vocabulary size V (index 0, padding, included: it is never a positive).
        top_ks, weight, name: as :class:`~rec_models.tasks.retrieval.RetrievalTask`.
    """

    def __init__(self, label: str, num_sampled: int, num_classes: int, top_ks: Sequence[int] = TOP_KS,
                 weight: float = 1.0, name: Optional[str] = None):
        super().__init__(label, top_ks=top_ks, weight=weight, name=name or 'sampled_softmax')
        if not 0 < num_sampled < num_classes:
            raise ValueError(f'task {self.name!r}: num_sampled must be in (0, {num_classes}), got {num_sampled}')
        self.num_sampled = int(num_sampled)
        self.num_classes = int(num_classes)

    def required_outputs(self):
        return (QUERY, ITEM_TABLE, ITEM_BIASES, POSITIVE_IDS)

    def compute_loss(self, labels, outputs, features, training=False):
        positive = self.positives(labels, outputs)
        ids = tf.reshape(tf.cast(outputs[POSITIVE_IDS], tf.int64), [-1, 1])
        per_row = tf.nn.sampled_softmax_loss(
            weights=outputs[ITEM_TABLE], biases=outputs[ITEM_BIASES], labels=ids, inputs=outputs[QUERY],
            num_sampled=self.num_sampled, num_classes=self.num_classes, remove_accidental_hits=True)
        return tf.reduce_sum(per_row * positive) / tf.maximum(tf.reduce_sum(positive), 1.0)

"""Wide&Deep's cross-product transformations (Cheng et al., *Wide & Deep Learning for Recommender Systems*, 2016),
one weight per combination of ids of the feature crosses the spec names (``crosses:``):

    φ_k(x) = Π_{i ∈ cross k} x_i          (1 iff every feature of cross k takes its given value)
    wide crosses = Σ_k w_{k, h_k(ids)}

Each cross k hashes its columns' ids into its own table of ``hash_buckets`` weights:

    h_k(ids) = FarmHash64("{id_a}|{id_b}|…") mod hash_buckets_k

(``tf.strings.to_hash_bucket_fast``: deterministic across runs, processes and machines.) An example with id 0
(missing) in any column of a cross has φ_k = 0. Regularisation (as POLY2's): λ Σ_b w_b² over the distinct weights
the batch uses, in training only.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from feature_spec.model_inputs import FeatureCross


class HashedFeatureCrosses(tf.keras.layers.Layer):
    """Σ_k w_{k, h_k(ids)} φ_k over the spec's crosses → ``[B]``.

    ``call(features, training=None)``: the transformed features (one int id ``[B]`` per crossed column).

    Args:
        crosses: the :class:`~feature_spec.model_inputs.FeatureCross` es (``ModelInputs.crosses``).
        l2: λ of the penalty on the weights used by the batch (0: none).
    """

    def __init__(self, crosses: Sequence[FeatureCross], l2=0.0, **kwargs):
        super().__init__(**kwargs)
        if not crosses:
            raise ValueError('HashedFeatureCrosses needs at least one cross; name them in the feature spec '
                             '("crosses:")')
        self.crosses = tuple(crosses)
        self.l2 = l2
        self.offsets = np.cumsum([0] + [c.hash_buckets for c in self.crosses])

    def build(self, input_shape):
        self.table = self.add_weight(name='table', shape=(int(self.offsets[-1]),), initializer='zeros')
        super().build(input_shape)

    def buckets(self, features):
        """Row of each cross's weight in the shared table, ``[B, K]`` int64, and φ ``[B, K]`` (0: an id missing)."""
        rows, present = [], []
        for cross, offset in zip(self.crosses, self.offsets):
            ids = [tf.cast(features[name], tf.int64) for name in cross.columns]
            key = tf.strings.join([tf.strings.as_string(i) for i in ids], separator='|')
            rows.append(tf.strings.to_hash_bucket_fast(key, cross.hash_buckets) + int(offset))
            present.append(tf.reduce_all(tf.stack([tf.not_equal(i, 0) for i in ids], axis=1), axis=1))
        return tf.stack(rows, axis=1), tf.cast(tf.stack(present, axis=1), tf.float32)

    def call(self, features, training=None):
        rows, phi = self.buckets(features)
        if training and self.l2:
            used, _ = tf.unique(tf.boolean_mask(rows, tf.not_equal(phi, 0.0)))
            self.add_loss(self.l2 * tf.reduce_sum(tf.square(tf.gather(self.table, used))))
        return tf.reduce_sum(tf.gather(self.table, rows) * phi, axis=1)

    def get_config(self):
        return {**super().get_config(), 'l2': self.l2,
                'crosses': [{'name': c.name, 'columns': list(c.columns), 'hash_buckets': c.hash_buckets}
                            for c in self.crosses]}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        crosses = [FeatureCross(c['name'], tuple(c['columns']), c['hash_buckets']) for c in config.pop('crosses')]
        return cls(crosses, **config)

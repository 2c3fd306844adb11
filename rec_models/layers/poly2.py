"""POLY2's explicit pairwise crosses with hashed weights (Chang et al., *Training and Testing Low-degree Polynomial
Data Mappings via Linear SVM*, JMLR 2010):

    POLY2(w, x) = Σ_{j1=1}^{n} Σ_{j2=j1+1}^{n} w_{h(j1, j2)} x_{j1} x_{j2}

Every pair of active features has its own weight; with one active id per categorical field the features of an
example are (field i, id_i) and the pair's weight is looked up in a table of ``num_buckets`` entries at

    h(i, id_i, j, id_j) = FarmHash64("{i}:{id_i}|{j}:{id_j}") mod num_buckets        (i < j field indices)

(``tf.strings.to_hash_bucket_fast`` of the joined decimal string): deterministic across runs, processes and
machines, and the field indices make the same id in two fields, or the same pair of ids in swapped fields,
different features. Hashing is a string op and runs on the CPU; POLY2 is O(n²) in the number of fields anyway.

Id 0 is the missing value (as in :mod:`~rec_models.layers.embedding`): a field with id 0 has x = 0 and takes
part in no pair. x_i is 1 for a present categorical field, or the field's value when ``values`` are given.

Regularisation (choice): ``l2`` adds λ Σ_b w_b² over the distinct buckets b of the batch's nonzero crosses, in
training only, rather than an L2 over the whole table, which would touch every bucket at every step.
"""

import numpy as np
import tensorflow as tf


class HashedPairwiseCross(tf.keras.layers.Layer):
    """Σ_{i<j} w_{h(i, id_i, j, id_j)} x_i x_j over the field pairs → ``[B]``.

    ``call(ids, values=None, training=None)``: ``ids`` ``[B, n]`` int64, one id per categorical field (0:
    missing); ``values`` ``[B, n]`` x_i (``None``: 1 for every present field).

    Args:
        num_buckets: size of the hashed weight table.
        l2: λ of the penalty on the weights used by the batch (0: none).
        initializer: initializer of the table (zeros: POLY2 starts as the model without crosses).
    """

    def __init__(self, num_buckets, l2=0.0, initializer='zeros', **kwargs):
        super().__init__(**kwargs)
        self.num_buckets = num_buckets
        self.l2 = l2
        self.initializer = tf.keras.initializers.get(initializer)

    def build(self, input_shape):
        rows, cols = np.triu_indices(int(input_shape[1]), k=1)
        self.pairs = rows, cols
        self.key_parts = (tf.constant([f'{i}:' for i in rows], tf.string),
                          tf.constant([f'|{j}:' for j in cols], tf.string))
        self.table = self.add_weight(name='table', shape=(self.num_buckets,), initializer=self.initializer)
        super().build(input_shape)

    def buckets(self, ids):
        """h(i, id_i, j, id_j) for every pair i<j: ``[B, n]`` → ``[B, n(n−1)/2]`` int64."""
        rows, cols = self.pairs
        names = tf.strings.as_string(ids)
        first, second = self.key_parts
        keys = first + tf.gather(names, rows, axis=1) + second + tf.gather(names, cols, axis=1)  # broadcasts
        return tf.strings.to_hash_bucket_fast(keys, self.num_buckets)

    def call(self, ids, values=None, training=None):
        rows, cols = self.pairs
        present = tf.cast(tf.not_equal(ids, 0), self.table.dtype)
        x = present if values is None else present * tf.cast(values, self.table.dtype)
        buckets = self.buckets(ids)
        crossed = tf.gather(x, rows, axis=1) * tf.gather(x, cols, axis=1)                   # x_i x_j: [B, P]
        if training and self.l2:
            used, _ = tf.unique(tf.boolean_mask(buckets, tf.not_equal(crossed, 0.0)))
            self.add_loss(self.l2 * tf.reduce_sum(tf.square(tf.gather(self.table, used))))
        return tf.reduce_sum(tf.gather(self.table, buckets) * crossed, axis=1)

    def get_config(self):
        return {**super().get_config(), 'num_buckets': self.num_buckets, 'l2': self.l2,
                'initializer': tf.keras.initializers.serialize(self.initializer)}

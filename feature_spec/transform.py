"""The Transform ``preprocessing_fn`` generated from a feature spec.

Each feature column becomes one transformed tensor (conventions in :mod:`feature_spec.model_inputs`):

* ``vocabulary``: index in a vocabulary of the training data (computed once over every column that shares it,
  e.g. the target item and the history items), OOV values hashed into ``num_oov_buckets`` extra ids; the
  vocabulary file keeps each token's training frequency, which feeds mini-batch-aware regularisation.
* ``hash``: ``hash(value) mod buckets``.
* ``bucketize``: index of the bucket among explicit ``boundaries`` or ``num_buckets`` training quantiles.
* ``log``: z-score of log(1 + max(x, 0)); ``zscore``: z-score of x.
* ``time_gap`` (ATRank): gap = reference − t seconds, bucket 0 for gap < 1 s, else ⌊log2 gap⌋ + 1, capped at
  ``num_buckets`` − 1: the buckets are [0,1), [1,2), [2,4), [4,8), …

Every id is shifted by one so that 0 means missing or padding. Id sequences keep the most recent
``max_length`` steps of their group (``behavior`` or an ``auxiliary`` group; oldest first), are padded with 0 at the
end to a fixed length, and their valid length is written to the group's ``length_feature``. Labels and the weight are cast to float32; keys and ground
truth never leave Transform. With ``behavior.sessions``, every sequence is also written in DSIN's session layout
(:mod:`feature_spec.sessions`) as ``<name>_sessions``, with the session lengths.

Raw inputs arrive as parsed from tf.Example (dense, sparse or ragged); a list column read from CSV arrives as one
space-separated string per row and is split here.
"""

import functools
from typing import Callable, Dict

import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import spec as spec_lib
from feature_spec.model_inputs import BEHAVIOR
from feature_spec.sessions import SessionLayout

_TF_DTYPES = {'int64': tf.int64, 'float32': tf.float32, 'string': tf.string}


def build_preprocessing_fn(spec: spec_lib.FeatureSpec) -> Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]]:
    """Returns the preprocessing_fn for ``spec``."""

    def preprocessing_fn(inputs):
        raw = _RawColumns(spec, inputs)
        vocabulary_ids = _vocabulary_ids(spec, raw)
        outputs = {}
        for column in spec.features:
            values = raw.get(column.source, column)
            outputs[column.name] = _transform(column, values, raw, vocabulary_ids)
        for group, (max_length, length_feature) in spec.sequence_groups().items():
            sequences = [c for c in spec.features if c.sequence and (c.group or BEHAVIOR) == group]
            if sequences:
                outputs[length_feature] = raw.sequence_length(sequences[0])
            for column in sequences:
                outputs[column.name] = outputs[column.name].to_tensor(default_value=0, shape=[None, max_length])
            if group == BEHAVIOR and spec.behavior.sessions is not None:
                outputs.update(_session_features(spec, raw, outputs, sequences))
        for column in spec.of_kind(spec_lib.LABEL, spec_lib.WEIGHT):
            outputs[column.name] = tf.cast(raw.get(column.source, column), tf.float32)
        for column in spec.of_kind(spec_lib.POSITION):
            if column.is_feature:
                _count_labels_by_id(outputs[column.name], outputs[spec.labels[0]], column.name)
        return outputs

    return preprocessing_fn


def position_count_file(position: str) -> str:
    """The name of the vocabulary file holding the training examples per id of the position feature ``position``."""
    return f'{position}__examples'


def position_label_file(position: str) -> str:
    """The name of the vocabulary file holding the primary label's sum per id of the position feature ``position``."""
    return f'{position}__labels'


def _count_labels_by_id(ids, label, position: str) -> None:
    """Counts the training examples and their labels per position id into two ``<count> <id>`` vocabulary files
    (:func:`position_count_file`, :func:`position_label_file`): the position CTR of the adversarial bias net and of
    COEC, from which :func:`feature_spec.resolve.position_rates` divides one by the other."""
    key = tf.strings.as_string(ids)
    tft.vocabulary(key, vocab_filename=position_count_file(position), store_frequency=True,
                   name=position_count_file(position))   # named: a stable analyzer cache key
    tft.vocabulary(key, weights=label, vocab_filename=position_label_file(position), store_frequency=True,
                   name=position_label_file(position))


def _session_features(spec: spec_lib.FeatureSpec, raw, outputs, sequences) -> Dict[str, tf.Tensor]:
    """Every sequence feature in DSIN's session layout, and the session lengths (:mod:`feature_spec.sessions`)."""
    sessions = spec.behavior.sessions
    time_column = next(c for c in spec.columns if c.source == sessions.time and c.sequence)
    times = raw.get(sessions.time, time_column)
    layout = SessionLayout(tf.cast(times.to_tensor(default_value=0, shape=[None, spec.behavior.max_length]),
                                   tf.int64), times.row_lengths(), sessions.gap_seconds, sessions.max_sessions,
                           sessions.max_length)
    features = {sessions.feature(c.name): layout.apply(outputs[c.name]) for c in sequences}
    features[sessions.length_feature] = layout.session_lengths
    return features


class _RawColumns:
    """Raw inputs as dense [B] scalars or ragged [B, ≤L] sequences truncated to their most recent L steps."""

    def __init__(self, spec: spec_lib.FeatureSpec, inputs):
        self.spec = spec
        self._inputs = inputs
        self._cache = {}

    def get(self, source: str, column: spec_lib.Column):
        max_length = self.spec.max_length(column) if column.sequence else None
        key = (source, max_length)
        if key not in self._cache:
            if source not in self._inputs:
                raise KeyError(f'feature spec {self.spec.path}: column {source!r} is missing from the Transform '
                               f'inputs (have: {", ".join(sorted(self._inputs))})')
            x = self._inputs[source]
            dtype = _TF_DTYPES[column.dtype]
            if column.sequence:
                self._cache[key] = _sequence(x, dtype)[:, -max_length:]
            else:
                self._cache[key] = _scalar(x, dtype)
        return self._cache[key]

    def sequence_length(self, column: spec_lib.Column) -> tf.Tensor:
        return self.get(column.source, column).row_lengths()

    def scalar(self, source: str) -> tf.Tensor:
        return self.get(source, self.spec[_first_column_named(self.spec, source)])


def _first_column_named(spec, source):
    return next(c.name for c in spec.columns if c.source == source and not c.sequence)


def _scalar(x, dtype) -> tf.Tensor:
    """[B] dense values; a missing value becomes the dtype's default (0, 0.0 or '')."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]))
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(shape=[None, 1])
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return _cast(x, dtype)


def _sequence(x, dtype) -> tf.RaggedTensor:
    """[B, None] ragged values; a CSV list (one space-separated string per row) is split first."""
    if isinstance(x, tf.SparseTensor):
        if x.dtype == tf.string and dtype != tf.string:
            return _sequence(_scalar(x, tf.string), dtype)
        x = tf.RaggedTensor.from_sparse(x)
    elif not isinstance(x, tf.RaggedTensor):
        if x.dtype == tf.string and dtype != tf.string:
            if x.shape.rank == 2:
                x = tf.squeeze(x, axis=1)
            x = tf.strings.split(x)
        else:
            x = tf.RaggedTensor.from_tensor(x)
    return tf.ragged.map_flat_values(_cast, x, dtype)


def _cast(x, dtype):
    if x.dtype == dtype:
        return x
    if x.dtype == tf.string:
        return tf.strings.to_number(x, out_type=dtype)
    return tf.cast(x, dtype)


def _flat(values):
    return values.flat_values if isinstance(values, tf.RaggedTensor) else values


SPACE = '\u2423'   # '␣' stands for a space inside a vocabulary token: the vocabulary file's delimiter is a space


def vocabulary_keys(x):
    """String values as the vocabulary stores them: each space written as ``SPACE``. The vocabulary file holds
    ``<count> <token>`` lines split at spaces, so a token with a space ("Toys & Games", an Amazon category) would
    be looked up by its first word and every such token would fall into the OOV bucket. Other dtypes pass."""
    if x.dtype != tf.string:
        return x
    return tf.strings.regex_replace(x, ' ', SPACE)


def _vocabulary_ids(spec, raw):
    """Column name → flat ids (shifted by one) of every vocabulary column.

    One analyzer per vocabulary, over the concatenated values of its columns of the shared groups; the vocabulary
    file stores each token's frequency too (``<count> <token>`` lines, most frequent first), which feeds
    mini-batch-aware L2; string tokens are stored with their spaces written as ``SPACE`` (:func:`vocabulary_keys`).
    Columns of an auxiliary group are looked up in it but not counted, so adding one changes
    no other model's ids (a vocabulary that only auxiliary columns use is counted over them).
    """
    members = {}
    for column in spec.features:
        if column.vocabulary is not None:
            members.setdefault(column.vocabulary, []).append(column)
    ids = {}
    for name, columns in members.items():
        vocabulary = spec.vocabularies[name]
        counted = [vocabulary_keys(_flat(raw.get(c.source, c))) for c in columns
                   if c.group not in spec.auxiliary_names] or [vocabulary_keys(_flat(raw.get(c.source, c)))
                                                               for c in columns]
        deferred = tft.vocabulary(tf.concat(counted, axis=0) if len(counted) > 1 else counted[0],
                                  top_k=vocabulary.top_k, frequency_threshold=vocabulary.min_frequency,
                                  vocab_filename=name, store_frequency=True, name=f'vocabulary_{name}')
        for column in columns:
            ids[column.name] = tft.apply_vocabulary(
                vocabulary_keys(_flat(raw.get(column.source, column))), deferred, num_oov_buckets=vocabulary.num_oov_buckets,
                lookup_fn=functools.partial(_frequency_file_lookup, num_oov_buckets=vocabulary.num_oov_buckets)) + 1
    return ids


def _frequency_file_lookup(x, path, num_oov_buckets):
    """Ids of ``x`` in a ``<count> <token>`` vocabulary file (line number; OOV hashed into ``num_oov_buckets`` extra
    ids, or −1 without them), and the number of ids: TFT's own table for a vocabulary stored with frequencies.

    Once the vocabulary is known (the final trace, where ``path`` is a constant), the table is built outside the
    traced function (``tft.make_and_track_object``, which lifts it into ``tf.init_scope``), so a loaded transform
    graph fills it once at load time. Built inside the function, as TFT leaves a ``lookup_fn``'s table, it would be
    filled from its file again on every call: about 1 ms of a 100-candidate ``rank`` request (two Transform calls),
    and a served model would fail if its asset files went away after loading.
    """
    def build():
        return tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(path, key_dtype=x.dtype, key_index=1, value_dtype=tf.int64,
                                          value_index=tf.lookup.TextFileIndex.LINE_NUMBER, delimiter=' '),
            default_value=-1)

    known = tf.inside_function() and (isinstance(path, str) or (tf.is_tensor(path) and not tf.is_symbolic_tensor(path)))
    table = tft.make_and_track_object(build) if known else build()
    ids = table.lookup(x)
    if num_oov_buckets > 0:
        ids = _hash_misses(x, ids, table.size(), num_oov_buckets)
    return ids, table.size() + num_oov_buckets


def _hash_misses(keys, ids, size, num_oov_buckets):
    """``ids`` with each miss (−1) replaced by ``size`` + its key's hash bucket among ``num_oov_buckets``: the ids
    of ``tf.lookup.StaticVocabularyTable``, whose lookup hashes every key (a string conversion and a fingerprint
    each: 1.2 of 4.2 ms of a served 100-example request with 50-step histories); here only the misses are hashed."""
    misses = tf.where(ids < 0)
    missed = tf.gather_nd(keys, misses)
    if missed.dtype != tf.string:
        missed = tf.strings.as_string(missed)
    buckets = tf.strings.to_hash_bucket_fast(missed, num_oov_buckets) + size
    return tf.tensor_scatter_nd_update(ids, misses, buckets)


def time_gap_bucket(gap_seconds: tf.Tensor, num_buckets: int) -> tf.Tensor:
    """ATRank's log2 buckets of a time gap, shifted by one: [0,1) → 1, [1,2) → 2, [2,4) → 3, [4,8) → 4, …

    Exact for integer gaps: the bucket is the number of powers of two 2^0 … 2^(num_buckets−2) that are ≤ gap.
    """
    edges = tf.constant([2 ** i for i in range(num_buckets - 1)], tf.int64)
    gaps = tf.maximum(tf.cast(gap_seconds, tf.int64), 0)
    return tf.searchsorted(edges, gaps, side='right', out_type=tf.int64) + 1


def _transform(column, values, raw, vocabulary_ids):
    if column.transform.type == 'time_gap':
        reference = raw.scalar(column.transform['reference'])
        num_buckets = column.transform['num_buckets']
        if isinstance(values, tf.RaggedTensor):
            reference = tf.repeat(reference, values.row_lengths())
            return values.with_flat_values(time_gap_bucket(reference - values.flat_values, num_buckets))
        return time_gap_bucket(reference - values, num_buckets)
    if column.transform.type == 'vocabulary':
        ids = vocabulary_ids[column.name]
        return values.with_flat_values(ids) if isinstance(values, tf.RaggedTensor) else ids
    if isinstance(values, tf.RaggedTensor):
        return values.with_flat_values(_transform_flat(column, values.flat_values))
    return _transform_flat(column, values)


def _transform_flat(column, values):
    kind = column.transform.type
    options = column.transform.options
    if kind == 'hash':
        return tf.strings.to_hash_bucket_fast(tf.strings.as_string(values), options['buckets']) + 1
    if kind == 'bucketize':
        values = tf.cast(values, tf.float32)
        if options['boundaries'] is not None:
            return tft.apply_buckets(values, tf.constant([options['boundaries']], tf.float32)) + 1
        return tft.bucketize(values, options['num_buckets'], epsilon=QUANTILE_EPSILON) + 1
    if kind == 'log':
        return _z_score(tf.math.log1p(tf.maximum(tf.cast(values, tf.float64), 0.0)))
    if kind == 'zscore':
        return _z_score(tf.cast(values, tf.float64))
    raise ValueError(f'column {column.name!r}: transform {kind!r} has no implementation')


# The quantile sketch's error bound for ``bucketize`` with ``num_buckets`` (rank error ≤ ε·N).
# Choice: 1e-6 instead of TFT's default min(1/num_buckets, 0.01). The sketch's edges depend on how Beam cut the
# data into batches and in which order it merged them, which follows timings: with 0.01, 1,309 of the default
# data's 309,000 training rows changed bucket in a run on a loaded machine, enough to change the trained model.
# Measured on tfx_bsl's sketch (blocks of random sizes merged in random order, two partitions each): at 0.01 the
# edges of 309,000 values moved by up to 56 ranks, at 1e-4 and 1e-6 they did not move, up to 3 million values at
# 1e-6. Memory: TFT measures the sketch at about 25 kB for 10^12 values at ε = 0.001; it grows as 1/ε, so tens
# of MB per bucketized column here, at any data size.
QUANTILE_EPSILON = 1e-6


def _z_score(values):
    """(x − mean) / std over the training data (x − mean where std is 0), as float32.

    Choice: the mean and the variance are accumulated in float64 and rounded to float32 before use. TFT reduces
    each Beam batch, then merges the partial results in an order set by how the runner cut the data into bundles
    and batches. Accumulated in float32 (TFT's default for float32 input), the mean changed in its last bits from
    run to run, and a few hundred of the demo's 309,000 training rows got different z-scores. Accumulated in
    float64, the statistics still differed in their last bits, enough to flip a float64 quotient's rounding to
    float32 for about one value in 20,000 (the test's data, Beam batches of 7 against 1,000 rows); rounded to
    float32 first, the statistics themselves repeat, and so does every z-score computed from them. ``tft.mean``
    and ``tft.var`` are two analyzers over the column (TFT's combined one is private): a second set of cheap sums
    in the same analysis pass.
    """
    mean = tf.cast(tft.mean(values), tf.float32)
    std = tf.cast(tf.sqrt(tft.var(values)), tf.float32)
    centred = tf.cast(values, tf.float32) - mean
    return tf.where(std > 0, centred / std, centred)

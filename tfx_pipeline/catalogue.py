"""The item catalogue a retrieval model keeps: every item id's side features, read from the training data.

One pass over Transform's training examples (every impression, clicked or not: an impression shows the item with
its features). For each id of the item vocabulary:

* a side feature of the item group (category, brand, price, …) takes its value in the latest row that shows the
  item as the target;
* an id never shown as a target but present in behaviour histories takes the side features its history steps carry
  (``hist_category`` for ``category``: the sequences whose query is the item feature); features no history carries
  (price) stay 0, the missing value;
* the positives per id (rows whose label is 1) are counted (the static sampling probabilities of logQ).

The indexed ids are 1…n, n the size of the item id's vocabulary; ids above n are its out-of-vocabulary buckets.

The raw item examples (:func:`raw_item_examples`) are the same catalogue before Transform: for each indexed item, a
tf.Example of the spec's candidate columns (the latest training row showing it; for an item seen in histories only,
the history columns' values, the others at their zero value), what a ranking model's ``rank`` signature reads. The
exported retrieval model returns them with the retrieved ids, so that a ranker can score the candidates at once.
"""

import csv
import itertools
from typing import Dict, Iterator, List, Sequence, Set, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec import resolve
from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from feature_spec.model_inputs import BEHAVIOR, ITEM, NUMERIC, SEQUENCE
from serving.examples import read_csv

BATCH = 8192


def vocabulary_tokens(tft_output: tft.TFTransformOutput, table: str) -> List[str]:
    """The raw tokens of vocabulary ``table`` in id order (id i + 1 is token i); ValueError when the item id has no
    vocabulary (a hashed id cannot be retrieved by name)."""
    try:
        path = tft_output.vocabulary_file_by_name(table)
    except (ValueError, KeyError, tf.errors.NotFoundError):
        raise ValueError(f'the item id {table!r} has no vocabulary in the Transform output: a retrieval model needs '
                         'the item id transformed with "transform: vocabulary"') from None
    return resolve.vocabulary_tokens(path)


def build(model, file_patterns: Sequence[str], tft_output: tft.TFTransformOutput, label: str) -> Dict[str, object]:
    """Fills ``model``'s catalogue (:meth:`~rec_models.retrieval.base.RetrievalModel.set_catalogue`) from the
    transformed examples of ``file_patterns``; returns a summary (items indexed, with target features, with history
    features only, positives)."""
    inputs = model.model_inputs
    item = model.item_id
    size = model.num_items
    side = [f for f in model.item_fields if f.name != item.name]
    sequences = {f.query: f for f in inputs.of_kind(SEQUENCE) if f.group == BEHAVIOR and f.query in
                 {s.name for s in side}}
    history = model.seen_field
    names = {item.name, label, *(f.name for f in side)}
    if history is not None:
        names |= {history.name, *(f.name for f in sequences.values())}
    spec = {k: v for k, v in tft_output.transformed_feature_spec().items() if k in names}
    target = {f.name: np.zeros(size, np.float32 if f.kind == NUMERIC else np.int64) for f in side}
    from_history = {name: np.zeros(size, np.int64) for name in sequences}
    target_known = np.zeros(size, bool)
    history_known = np.zeros(size, bool)
    counts = np.zeros(size, np.float64)
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    for batch in tf.data.TFRecordDataset(files, compression_type='GZIP').batch(BATCH).map(
            lambda x: tf.io.parse_example(x, spec)):
        ids = batch[item.name].numpy().reshape(-1)
        for f in side:
            target[f.name][ids] = batch[f.name].numpy().reshape(-1)
        target_known[ids] = True
        np.add.at(counts, ids, (batch[label].numpy().reshape(-1) > 0.5).astype(np.float64))
        if history is not None and sequences:
            steps = batch[history.name].numpy().reshape(-1)
            valid = steps > 0
            for name, field in sequences.items():
                from_history[name][steps[valid]] = batch[field.name].numpy().reshape(-1)[valid]
            history_known[steps[valid]] = True
    features = {}
    for f in side:
        values = target[f.name]
        if f.name in from_history:
            values = np.where(target_known, values, from_history[f.name])
        features[f.name] = values
    index_size = min(len(vocabulary_tokens(tft_output, item.table)), size - 1)
    model.set_catalogue(features, index_size, counts)
    indexed = slice(1, index_size + 1)
    return {'items_indexed': int(index_size), 'items_with_target_features': int(target_known[indexed].sum()),
            'items_with_history_features_only': int((history_known & ~target_known)[indexed].sum()),
            'positives': int(counts.sum())}


def labelled_examples(pattern: str, spec: spec_lib.FeatureSpec, data_format: str) -> Iterator[Tuple[bytes, float]]:
    """``(serialized example as served, primary label)`` of every row of the raw files of ``pattern``, in file
    order (a CSV row converted by the spec)."""
    label = spec.labels[0]
    files = sorted(tf.io.gfile.glob(pattern))
    if data_format == schema_lib.TFRECORD:
        for record in tf.data.TFRecordDataset(files):
            serialized = record.numpy()
            values = tf.train.Example.FromString(serialized).features.feature[label]
            yield serialized, float((values.int64_list.value or values.float_list.value or [0])[0])
        return
    for path in files:
        with tf.io.gfile.GFile(path) as f:
            labels = (float(row[label] or 0) for row in csv.DictReader(f))
            yield from zip(read_csv(path, spec), labels)


def raw_item_examples(spec: spec_lib.FeatureSpec, pattern: str, data_format: str, item_column: str,
                      tokens: Sequence[str]) -> List[bytes]:
    """One serialized tf.Example of the candidate columns per token of ``tokens`` (the indexed items), read from
    the raw files of ``pattern`` in batches (module docstring)."""
    typed = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
    columns = spec.candidate_columns
    lists = [c for c in columns if isinstance(typed[c], tf.io.VarLenFeature)]
    if lists:
        raise ValueError(f'{spec.path}: candidate columns {lists} are lists; the item catalogue keeps one value per '
                         'item column')
    pairs = history_columns(spec, item_column)
    history = pairs.pop(item_column, None)
    parsing = {c: typed[c] for c in columns}
    if history is not None:
        parsing.update({history: typed[history], **{h: typed[h] for h in pairs.values()}})
    position = {token: i for i, token in enumerate(tokens)}
    size = len(tokens)
    dtypes = {c: typed[c].dtype.as_numpy_dtype if typed[c].dtype != tf.string else object for c in columns}
    target = {c: np.zeros(size, dtypes[c]) for c in columns}
    from_history = {c: np.zeros(size, dtypes[c]) for c in pairs}
    target_known = np.zeros(size, bool)
    for parsed in _parsed_batches(pattern, spec, data_format, parsing):
        rows = _positions(parsed[item_column].numpy().reshape(-1), position)
        found = rows >= 0
        for c in columns:
            target[c][rows[found]] = parsed[c].numpy().reshape(-1)[found]
        target_known[rows[found]] = True
        if history is not None and pairs:
            steps = _positions(parsed[history].values.numpy(), position)
            seen = steps >= 0
            for c, h in pairs.items():
                values = parsed[h].values.numpy()
                if len(values) == len(steps):   # aligned with the history of ids
                    from_history[c][steps[seen]] = values[seen]
    for c in pairs:
        target[c] = np.where(target_known, target[c], from_history[c])
    target[item_column] = np.array([_cast(token, dtypes[item_column]) for token in tokens], dtypes[item_column])
    examples = []
    for i in range(size):
        example = tf.train.Example()
        for c in columns:
            example.features.feature[c].CopyFrom(_feature(target[c][i]))
        examples.append(example.SerializeToString())
    return examples


def item_feed_examples(spec: spec_lib.FeatureSpec, pattern: str, data_format: str, item_column: str,
                       known: Set[str]) -> Tuple[List[str], List[bytes]]:
    """``(raw ids, serialized examples of the candidate columns)`` of the items of the item feed ``pattern`` (raw
    files in ``data_format``, one row per item holding the spec's candidate columns; a later row of an id replaces
    an earlier one) whose raw id is not in ``known`` (the vocabulary's tokens), in the order of first appearance.

    Raises:
        ValueError: no file matches, or a row lacks a candidate column (naming the file).
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f'item feed {pattern}: no file matches')
    typed = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
    columns = spec.candidate_columns
    parsing = {c: typed[c] for c in columns}
    lists = [c for c in columns if isinstance(typed[c], tf.io.VarLenFeature)]
    if lists:
        raise ValueError(f'{spec.path}: candidate columns {lists} are lists; the item feed keeps one value per column')
    items: Dict[str, bytes] = {}
    for path in files:
        try:
            for parsed in _parsed_batches(path, spec, data_format, parsing, required=columns):
                values = {c: parsed[c].numpy().reshape(-1) for c in columns}
                for i, raw_id in enumerate(values[item_column]):
                    token = token_text(raw_id)
                    if token not in known:
                        example = tf.train.Example()
                        for c in columns:
                            example.features.feature[c].CopyFrom(_feature(values[c][i]))
                        items[token] = example.SerializeToString()
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(f'item feed {path}: {e.message}') from None
    return list(items), list(items.values())


def _parsed_batches(pattern: str, spec: spec_lib.FeatureSpec, data_format: str, parsing,
                    required: Sequence[str] = ()) -> Iterator[Dict]:
    """The raw files' examples (as served) parsed with ``parsing``, in batches (a CSV header must hold
    ``required``)."""
    files = sorted(tf.io.gfile.glob(pattern))
    if data_format == schema_lib.TFRECORD:
        yield from tf.data.TFRecordDataset(files).batch(BATCH).map(lambda x: tf.io.parse_example(x, parsing))
        return
    stream = (serialized for path in files for serialized in read_csv(path, spec, required))
    while True:
        batch = list(itertools.islice(stream, BATCH))
        if not batch:
            return
        yield tf.io.parse_example(tf.constant(batch), parsing)


def _positions(values: np.ndarray, position: Dict[str, int]) -> np.ndarray:
    """The index positions of raw ids (−1: not indexed), one dictionary look-up per distinct id."""
    if len(values) == 0:
        return np.zeros(0, np.int64)
    distinct, inverse = np.unique(values, return_inverse=True)
    looked_up = np.array([position.get(token_text(v), -1) for v in distinct], np.int64)
    return looked_up[inverse]


def token_text(value) -> str:
    """A raw id value as its vocabulary token (``'1234'`` for an integer, bytes decoded)."""
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def _cast(token: str, dtype):
    if dtype is object:
        return token.encode()
    return np.dtype(dtype).type(token)


def _feature(value) -> tf.train.Feature:
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, (np.integer, int)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def history_columns(spec: spec_lib.FeatureSpec, item_column: str) -> Dict[str, str]:
    """``{candidate column: raw history column}`` for the item columns a behaviour sequence carries (the sequence
    sharing the column's vocabulary), the item id's own history included."""
    pairs = {}
    for column in spec.features:
        if column.group != ITEM or column.vocabulary is None or column.sequence:
            continue
        for other in spec.features:
            if other.group == BEHAVIOR and other.sequence and other.vocabulary == column.vocabulary:
                pairs[column.source] = other.source
                break
    if item_column not in pairs:
        pairs.pop(item_column, None)
    return pairs


RECENT_DAYS = 7.0


def request_time_column(spec: spec_lib.FeatureSpec):
    """The raw column of the request's time: the reference of the spec's time-gap transforms (None without one)."""
    for column in spec.columns:
        if column.transform is not None and column.transform.type == 'time_gap':
            return column.transform['reference']
    return None


def recent_popularity(spec: spec_lib.FeatureSpec, pattern: str, data_format: str, item_column: str,
                      tokens: Sequence[str], days: float = RECENT_DAYS) -> np.ndarray:
    """``[len(tokens)]``: each indexed item's share of the clicks (positive rows) of the last ``days`` days of the
    raw files of ``pattern`` (the whole files when the spec has no request time): the cold-start list of a user
    without history (Choice: a recent window, as popularity drifts; 7 days)."""
    time_column = request_time_column(spec)
    position = {token: i for i, token in enumerate(tokens)}
    typed = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
    parsing = {item_column: typed[item_column]}
    if time_column is not None:
        parsing[time_column] = typed[time_column]
    items, times = [], []
    labelled = labelled_examples(pattern, spec, data_format)
    while True:
        batch = list(itertools.islice(labelled, BATCH))
        if not batch:
            break
        kept = [serialized for serialized, label in batch if label > 0.5]
        if not kept:
            continue
        parsed = tf.io.parse_example(tf.constant(kept), parsing)
        items.append(_positions(parsed[item_column].numpy().reshape(-1), position))
        if time_column is not None:
            times.append(parsed[time_column].numpy().reshape(-1).astype(np.float64))
    counts = np.zeros(len(tokens))
    if not items:
        return counts
    rows = np.concatenate(items)
    recent = np.ones(len(rows), bool)
    if times:
        stamps = np.concatenate(times)
        recent = stamps >= stamps.max() - days * 86_400
    found = recent & (rows >= 0)
    np.add.at(counts, rows[found], 1.0)
    return counts / max(counts.sum(), 1.0)

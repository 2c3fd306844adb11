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
"""

from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from feature_spec.model_inputs import BEHAVIOR, SEQUENCE

BATCH = 8192


def vocabulary_tokens(tft_output: tft.TFTransformOutput, table: str) -> List[str]:
    """The raw tokens of vocabulary ``table`` in id order (id i + 1 is token i); ValueError when the item id has no
    vocabulary (a hashed id cannot be retrieved by name)."""
    try:
        path = tft_output.vocabulary_file_by_name(table)
    except (ValueError, KeyError, tf.errors.NotFoundError):
        raise ValueError(f'the item id {table!r} has no vocabulary in the Transform output: a retrieval model needs '
                         'the item id transformed with "transform: vocabulary"') from None
    with tf.io.gfile.GFile(path, 'rb') as f:
        return [line.rstrip(b'\n').split(b' ', 1)[-1].decode('utf-8', 'replace') for line in f if line.strip()]


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
    target = {f.name: np.zeros(size, np.float32 if f.kind == 'numeric' else np.int64) for f in side}
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

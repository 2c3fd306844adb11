"""The SavedModel a retrieval model is served from: the item index inside, raw tf.Examples in, item ids out.

At export every indexed item of the catalogue (ids 1…n of Transform's item vocabulary, side features from the
training data: :mod:`tfx_pipeline.catalogue`) is embedded once by the candidate tower; the embeddings and the
items' raw ids are variables of the SavedModel. With an item feed (``data.item_feed``: the shop's item table, one
row of the candidate columns per item; the synthetic generator writes one), the feed's items outside the
vocabulary follow them in the index: new items, embedded through their side features (their id falls in an
out-of-vocabulary bucket), so ``retrieve`` reaches them (the cold-start issue's second half). ``trained_items`` (a
variable) is how many of the index's items come from the vocabulary. Signatures (standard ops only, so stock TF
Serving loads them):

* ``retrieve(context [N], k []) → item_ids [N, k], scores [N, k], candidates [N, k]``: each context example (the
  user, the behaviour history and the request context: the spec's
  :attr:`~feature_spec.spec.FeatureSpec.context_columns`) → the k best items of the index by ⟨u, v⟩ (a
  multi-interest model's best interest), best first. ``k`` is clipped to [1, min(``MAX_K``, n)]. ``item_ids`` are
  the raw ids as strings (the vocabulary's tokens: ``"1234"`` for an integer id); ``candidates`` (when the export
  was given the training files) the items' raw tf.Examples of the candidate columns, ready for a ranker's
  ``rank`` signature. Cold start (when the export was given the training files and the model reads a behaviour
  sequence): a context with no history gets the recent popularity list (each item's share of the clicks of the
  training data's last 7 days, :func:`tfx_pipeline.catalogue.recent_popularity`) as its scores, in place of the
  query tower's.
* ``retrieve_excluding(context [N], k [], exclude [N, E]) → …``: the same, without the raw item ids of each row of
  ``exclude`` (the item id column's raw type, matched to the index's raw ids through a hash table, new items
  included; pad a short row with an id not in the catalogue, e.g. −1 or ``""``).
* ``serving_default(examples [N]) → item_ids [N, 100], scores``: ``retrieve`` with k = ``DEFAULT_K`` for clients
  that name no signature; full examples may be sent (the item columns are ignored).
* ``embed_query(context [N]) → embeddings [N, d]`` (``[N, K, d]`` and ``interest_mask [N, K]`` for a multi-interest
  model) and ``embed_candidate(candidates [N]) → embeddings [N, d]`` (the item columns: a new item whose id is out
  of the vocabulary is embedded through its side features), for an external index.

The exact top-k is a matrix product and ``tf.math.top_k`` over the n items (the approach of TensorFlow Recommenders'
``BruteForce`` layer, written here because its ``k`` is fixed at trace time).
"""

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models import base
from serving import signatures
from serving.examples import join_for_rank, split_for_rank
from tfx_pipeline import catalogue
from tfx_pipeline.export import (_join_lists, _joined_lists, _parse, _placeholders, _predict_request,
                                 transform_in_process, write_warmup_requests)

SAMPLE_RETRIEVALS = 'sample_retrievals.json'
MAX_K = 1000
DEFAULT_K = 100
WARMUP_BATCH = 16
INDEX_BATCH = 65_536


class RetrievalServingModel(tf.Module):
    """Raw context examples → Transform graph → query tower → top k of the item index (module docstring)."""

    def __init__(self, model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                 data_format: str, item_examples: Optional[Sequence[bytes]] = None,
                 index: Optional[Tuple[np.ndarray, Sequence[str]]] = None, popularity: Optional[np.ndarray] = None,
                 new_items: Optional[Tuple[Sequence[str], Sequence[bytes]]] = None):
        """``index``: ``(embeddings [n, d], raw ids [n])`` of an index built elsewhere (another embedding job; the
        latency benchmark's sizes), in place of the catalogue's. ``item_examples`` and ``popularity``: one per
        item of the catalogue's index. ``new_items``: ``(raw ids, serialized candidate examples)`` of items to add
        (:func:`tfx_pipeline.catalogue.item_feed_examples`), embedded here by the candidate tower."""
        super().__init__()
        object.__setattr__(self, 'model', model)
        object.__setattr__(self, 'tft_layer', tft_output.transform_features_layer())
        self.transform_resources = self.tft_layer._saved_model_loader_tracked_dict  # pylint: disable=protected-access
        parsing = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
        self._joined_lists = _joined_lists(spec, data_format)
        self._context_parsing = {name: parsing[name] for name in spec.context_columns}
        self._candidate_parsing = {name: parsing[name] for name in spec.candidate_columns}
        self._item_column = spec[model.item_id.name].source
        self._item_features = tuple(f.name for f in model.item_fields)
        if index is None:
            tokens = indexed_tokens(model, tft_output)
            size = len(tokens)
            embeddings = index_embeddings(model)[1:size + 1]
        else:
            embeddings, tokens = index
            size = len(tokens)
        tokens = list(tokens[:size])
        for name, values in (('item examples', item_examples), ('popularity shares', popularity)):
            if values is not None and len(values) != size:
                raise ValueError(f'{len(values)} {name} for an index of {size} items')
        self.trained_items = tf.Variable(size, dtype=tf.int64, trainable=False, name='trained_items')
        added = ([], []) if new_items is None else (list(new_items[0]), list(new_items[1]))
        object.__setattr__(self, 'new_items', added if added[0] else None)   # not saved: the index holds them
        if added[0]:
            embeddings = np.concatenate([embeddings, self._embed_candidates(added[1])], axis=0)
            tokens += added[0]
            size += len(added[0])
            item_examples = None if item_examples is None else list(item_examples) + added[1]
            popularity = None if popularity is None else np.r_[popularity, np.zeros(len(added[0]))]
        self.index = tf.Variable(embeddings, trainable=False, name='index')
        self.index_ids = tf.Variable(np.array(tokens, dtype=object), trainable=False, dtype=tf.string,
                                     name='index_ids')
        self.size = size
        self.positions = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(np.array(tokens, dtype=object), tf.string), tf.range(size, dtype=tf.int64)), default_value=-1)
        self.index_examples = None
        if item_examples is not None:
            self.index_examples = tf.Variable(np.array(list(item_examples), dtype=object), trainable=False,
                                              dtype=tf.string, name='index_examples')
        self.popularity = None
        if popularity is not None and model.model_inputs.sequence_length is not None:
            self.popularity = tf.Variable(np.asarray(popularity, np.float32), trainable=False, name='popularity')
        self._item_dtype = self._candidate_parsing[self._item_column].dtype
        if not (self._item_dtype.is_integer or self._item_dtype == tf.string):
            raise ValueError(f'{spec.path}: the item id column {self._item_column!r} is {self._item_dtype.name}; '
                             'a retrieval model needs integer or string ids')

    def _embed_candidates(self, serialized: Sequence[bytes]) -> np.ndarray:
        """The candidate tower's embeddings ``[n, d]`` of serialized candidate examples, in batches."""
        parts = []
        for start in range(0, len(serialized), INDEX_BATCH):
            batch = tf.constant(list(serialized[start:start + INDEX_BATCH]))
            features = self._candidate_features(_parse(batch, self._candidate_parsing), tf.shape(batch)[0])
            parts.append(self.model.candidate_embedding(features, training=False).numpy())
        return np.concatenate(parts, axis=0).astype(np.float32)

    def track_model_variables(self) -> None:
        setattr(self, base.EXPORTED_VARIABLES, base.variable_keys(self.model))

    def _transform(self, raw):
        return self.tft_layer(_join_lists(raw, self._joined_lists))

    def context_features(self, context):
        """The transformed features of raw context examples (the candidate columns as placeholders)."""
        raw = _parse(context, self._context_parsing)
        return self._transform({**_placeholders(self._candidate_parsing, tf.shape(context)[0]), **raw})

    def _candidate_features(self, raw, rows):
        features = self._transform({**_placeholders(self._context_parsing, rows), **raw})
        return {name: features[name] for name in self._item_features}

    def query(self, context, features=None):
        """``(query [N, d] or [N, K, d], interest mask or None)`` of raw context examples."""
        features = self.context_features(context) if features is None else features
        query = self.model.query_embedding(features, training=False)
        return query if isinstance(query, tuple) else (query, None)

    def cold(self, features):
        """bool ``[N, 1]``: the rows without history, which get the popularity list."""
        return tf.equal(features[self.model.model_inputs.sequence_length], 0)[:, tf.newaxis]

    def _retrieve(self, context, k, exclude=None):
        features = self.context_features(context)
        query, interest_mask = self.query(context, features)
        scores = self.model.scores(query, self.index, interest_mask)                  # [N, n]
        if self.popularity is not None:   # a user without history: the recent popularity list
            cold = self.cold(features)
            scores = tf.where(cold, self.popularity[tf.newaxis, :], scores)
        if exclude is not None:
            rows, width = tf.shape(exclude, out_type=tf.int64)[0], tf.shape(exclude, out_type=tf.int64)[1]
            keys = exclude if exclude.dtype == tf.string else tf.strings.as_string(exclude)
            ids = self.positions.lookup(tf.reshape(keys, [-1]))                       # index positions, −1: none
            row = tf.repeat(tf.range(rows), width)
            valid = ids >= 0
            pairs = tf.stack([tf.boolean_mask(row, valid), tf.boolean_mask(ids, valid)], axis=1)
            hits = tf.scatter_nd(pairs, tf.ones([tf.shape(pairs)[0]]), tf.stack([rows, tf.constant(self.size,
                                                                                                  tf.int64)]))
            scores = tf.where(hits > 0, tf.constant(-np.inf, scores.dtype), scores)
        k = tf.clip_by_value(tf.cast(k, tf.int32), 1, min(MAX_K, self.size))
        top = tf.math.top_k(scores, k=k)
        outputs = {signatures.ITEM_IDS: tf.gather(self.index_ids, top.indices), signatures.SCORES: top.values}
        if self.index_examples is not None:
            outputs[signatures.CANDIDATES] = tf.gather(self.index_examples, top.indices)
        return outputs

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.CONTEXT),
                                                   tf.TensorSpec([], tf.int32, name=signatures.K)])
    def retrieve(self, context, k):
        return self._retrieve(context, k)

    def retrieve_excluding_function(self):
        @tf.function(autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name=signatures.CONTEXT), tf.TensorSpec([], tf.int32, name=signatures.K),
            tf.TensorSpec([None, None], self._item_dtype, name=signatures.EXCLUDE)])
        def retrieve_excluding(context, k, exclude):
            return self._retrieve(context, k, exclude)
        return retrieve_excluding

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
    def serve(self, examples):
        return self._retrieve(examples, DEFAULT_K)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.CONTEXT)])
    def embed_query(self, context):
        query, interest_mask = self.query(context)
        outputs = {signatures.EMBEDDINGS: query}
        if interest_mask is not None:
            outputs[signatures.INTEREST_MASK] = interest_mask
        return outputs

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.CANDIDATES)])
    def embed_candidate(self, candidates):
        raw = _parse(candidates, self._candidate_parsing)
        features = self._candidate_features(raw, tf.shape(candidates)[0])
        return {signatures.EMBEDDINGS: self.model.candidate_embedding(features, training=False)}

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        if not hasattr(self, '_retrieve_excluding'):
            self._retrieve_excluding = self.retrieve_excluding_function()
        return {signatures.PREDICT: self.serve, signatures.RETRIEVE: self.retrieve,
                signatures.RETRIEVE_EXCLUDING: self._retrieve_excluding, signatures.EMBED_QUERY: self.embed_query,
                signatures.EMBED_CANDIDATE: self.embed_candidate}


def indexed_tokens(model, tft_output: tft.TFTransformOutput) -> List[str]:
    """The raw ids of the index: Transform's item vocabulary, its first ``index_size`` tokens (the catalogue's; a
    model whose catalogue was never filled indexes the whole vocabulary, not its out-of-vocabulary buckets)."""
    return catalogue.vocabulary_tokens(tft_output, model.item_id.table)[:int(model.index_size.numpy())]


def index_embeddings(model) -> np.ndarray:
    """The candidate embeddings ``[V, d]`` of every id of the model's item table, computed in batches."""
    ids = np.arange(model.num_items, dtype=np.int64)
    parts = [model.candidate_embedding(model.catalogue_features(tf.constant(ids[i:i + INDEX_BATCH])),
                                       training=False).numpy() for i in range(0, len(ids), INDEX_BATCH)]
    return np.concatenate(parts, axis=0).astype(np.float32)


def retrieve_in_process(model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec, data_format: str,
                        serialized: Sequence[bytes], k: int, popularity: Optional[np.ndarray] = None,
                        new_items: Optional[Tuple[Sequence[str], Sequence[bytes]]] = None) -> Dict[str, np.ndarray]:
    """``{item_ids [N, k], scores [N, k]}`` computed eagerly from the Keras model (Transform, query tower, the
    catalogue's embeddings, a NumPy top k; ``popularity``'s scores, over the whole index, for a context without
    history), outside any SavedModel: what ``retrieve`` must serve. ``new_items`` (the item feed's) are embedded
    from full examples (each candidate joined to the first context), through Transform and the candidate tower."""
    features = transform_in_process(tft_output, spec, data_format, serialized)
    query = model.query_embedding(features, training=False)
    query, interest_mask = query if isinstance(query, tuple) else (query, None)
    tokens = indexed_tokens(model, tft_output)
    index = index_embeddings(model)[1:len(tokens) + 1]
    if new_items is not None and len(new_items[0]):
        context = split_for_rank(serialized[0], spec)[0]
        joined = [join_for_rank(context, candidate).SerializeToString() for candidate in new_items[1]]
        item_features = transform_in_process(tft_output, spec, data_format, joined)
        item_features = {f.name: item_features[f.name] for f in model.item_fields}
        index = np.concatenate([index, model.candidate_embedding(item_features, training=False).numpy()])
        tokens = tokens + list(new_items[0])
    tokens = np.array(tokens, dtype=object)
    scores = model.scores(query, tf.constant(index), interest_mask).numpy()
    if popularity is not None:
        cold = features[model.model_inputs.sequence_length].numpy() == 0
        scores[cold] = popularity
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    return {signatures.ITEM_IDS: tokens[top], signatures.SCORES: np.take_along_axis(scores, top, axis=1)}


def write_sample_retrievals(model, tft_output, spec, data_format, serialized: Sequence[bytes], out_dir: str,
                            k: int = 10, popularity: Optional[np.ndarray] = None,
                            new_items: Optional[Tuple[Sequence[str], Sequence[bytes]]] = None) -> str:
    """Records raw examples and their in-process top k (``sample_retrievals.json``), to check exported models
    against."""
    result = retrieve_in_process(model, tft_output, spec, data_format, serialized, k, popularity, new_items)
    path = os.path.join(out_dir, SAMPLE_RETRIEVALS)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump({'examples': [e.hex() for e in serialized], 'k': k,
                   signatures.ITEM_IDS: result[signatures.ITEM_IDS].tolist(),
                   signatures.SCORES: result[signatures.SCORES].tolist()}, f)
    return path


def export_retrieval_model(model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                           data_format: str, export_dir: str, warmup_examples: Sequence[bytes] = (),
                           train_pattern: Optional[str] = None, item_feed: Optional[str] = None
                           ) -> RetrievalServingModel:
    """Writes the SavedModel (every signature, and warmup requests when ``warmup_examples`` are given); returns the
    in-process serving module. With ``train_pattern`` (the raw training files), ``retrieve`` also returns each
    retrieved item's raw example (``candidates``: :func:`tfx_pipeline.catalogue.raw_item_examples`). With
    ``item_feed`` (raw files of the candidate columns), its items outside the vocabulary join the index (module
    docstring); the module's ``new_items`` holds them (None without any)."""
    item_examples = popularity = new_items = None
    tokens = indexed_tokens(model, tft_output)
    item_column = spec[model.item_id.name].source
    if train_pattern:
        item_examples = catalogue.raw_item_examples(spec, train_pattern, data_format, item_column, tokens)
        popularity = catalogue.recent_popularity(spec, train_pattern, data_format, item_column, tokens)
    if item_feed:
        new_items = catalogue.item_feed_examples(spec, item_feed, data_format, item_column, set(tokens))
    serving = RetrievalServingModel(model, tft_output, spec, data_format, item_examples, popularity=popularity,
                                    new_items=new_items)
    functions = serving.signatures()
    for function in functions.values():
        function.get_concrete_function()
    serving.track_model_variables()
    tf.saved_model.save(serving, export_dir, signatures=functions)
    if warmup_examples:
        write_warmup_requests(export_dir, warmup_requests(warmup_examples, spec))
    return serving


def warmup_requests(examples: Sequence[bytes], spec: spec_lib.FeatureSpec) -> List[prediction_log_pb2.PredictionLog]:
    """Warmup requests: ``retrieve`` of one context and of a batch, ``embed_query`` and ``embed_candidate``."""
    batch = list(examples[:WARMUP_BATCH])
    contexts = [split_for_rank(e, spec)[0].SerializeToString() for e in batch]
    candidates = [split_for_rank(e, spec)[1].SerializeToString() for e in batch]
    requests = [_predict_request(signatures.RETRIEVE, {signatures.CONTEXT: contexts[:size]}) for size in
                sorted({1, len(contexts)})]
    for request in requests:
        request.inputs[signatures.K].CopyFrom(tf.make_tensor_proto(DEFAULT_K, dtype=tf.int32))
    requests.append(_predict_request(signatures.EMBED_QUERY, {signatures.CONTEXT: contexts}))
    requests.append(_predict_request(signatures.EMBED_CANDIDATE, {signatures.CANDIDATES: candidates}))
    return [prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=r)) for r in requests]

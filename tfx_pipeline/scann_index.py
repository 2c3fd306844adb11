"""An optional ScaNN index for a retrieval model: an approximate top k in place of the exact one.

ScaNN (Guo et al., "Accelerating Large-Scale Inference with Anisotropic Vector Quantization", ICML 2020) splits
the index into ``num_leaves`` partitions (a k-means tree), scores the items of the ``leaves_to_search`` partitions
nearest to the query with anisotropic product quantization (2 dimensions a code), and rescores its best
``reorder`` candidates exactly. Install it with ``pip install -c constraints.txt -e '.[scann]'`` (scann 1.3.2, built
against TF 2.16).

Its TensorFlow ops are custom: the SavedModel written here loads only where ``import scann`` registered them (in
Python) or in a TF Serving built with ScaNN's ops. **Stock TF Serving cannot load it**, so the exact index of
:mod:`tfx_pipeline.retrieval_export` stays the default (top 100 of a million items in about 11 ms p99 on 2 cores),
and this is an extra for larger indexes or tighter budgets.

:func:`export_scann_model` writes, beside the exact model, a SavedModel whose ``retrieve(context [N], k []) →
item_ids [N, k], scores [N, k]`` (k clipped to [1, ``max_k``]) reads the context as the exact model does (its
Transform graph and query tower, tracked from the :class:`~tfx_pipeline.retrieval_export.RetrievalServingModel`)
and searches the same index. A user without history gets the same recent popularity list. Choices: one query
vector a context (a multi-interest model keeps the exact index: merging K searches needs a de-duplication the
exact scores make unnecessary); no ``retrieve_excluding`` (exclusion would need a search deeper than k);
``num_leaves`` ≈ √n, ``leaves_to_search`` = 10% of the leaves and ``reorder`` = 10 × ``max_k`` by default (between
the settings of ScaNN's own examples: 2,000 leaves, 100 searched and 100 reordered for 10 neighbours of a
million points); recall against the exact index depends on how clustered the embeddings are, so measure it on
yours (``benchmarks/retrieval_latency.py --scann`` prints it with the latency).
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from serving import signatures
from tfx_pipeline import retrieval_export

DEFAULT_MAX_K = 100


def _scann():
    try:
        import scann  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ImportError('the ScaNN index needs the scann package: pip install -c constraints.txt -e ".[scann]" '
                          '(scann 1.3.2 matches TF 2.16)') from e
    return scann


def default_leaves(size: int) -> int:
    """About √n partitions, at least 1 and at most n / 10 (ScaNN needs a few items a leaf)."""
    return int(max(1, min(round(math.sqrt(size)), size // 10)))


class ScannRetrievalModel(tf.Module):
    """``retrieve`` over a ScaNN searcher of ``serving``'s index (module docstring)."""

    def __init__(self, serving: retrieval_export.RetrievalServingModel, max_k: int = DEFAULT_MAX_K,
                 num_leaves: Optional[int] = None, leaves_to_search: Optional[int] = None,
                 reorder: Optional[int] = None, training_sample_size: int = 100_000):
        super().__init__()
        if serving.model.MULTI_INTEREST:
            raise ValueError(f'{serving.model.name}: a multi-interest model keeps the exact index (module docstring)')
        index = serving.index.numpy()
        size = index.shape[0]
        self.max_k = int(min(max_k, size))
        if self.max_k < 1:
            raise ValueError(f'max_k must be at least 1, got {max_k}')
        leaves = num_leaves or default_leaves(size)
        searched = leaves_to_search or max(1, leaves // 10)
        scann_ops = _scann().scann_ops
        builder = scann_ops.builder(index, self.max_k, 'dot_product')
        if leaves > 1:
            builder = builder.tree(num_leaves=leaves, num_leaves_to_search=min(searched, leaves),
                                   training_sample_size=min(size, training_sample_size))
        # The searcher's state as variables (its handle is rebuilt from them in the graph, as TFRS's ScaNN layer does).
        self.searcher = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(
            reorder or 10 * self.max_k).build().serialize_to_module()
        self.base = serving
        self.settings = {'items': size, 'max_k': self.max_k, 'num_leaves': leaves,
                         'leaves_to_search': min(searched, leaves), 'reorder': reorder or 10 * self.max_k}
        self.popular = None
        if serving.popularity is not None:
            popularity = serving.popularity.numpy()
            order = np.argsort(-popularity, kind='stable')[:self.max_k]
            self.popular = (tf.constant(order, tf.int32), tf.constant(popularity[order], tf.float32))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.CONTEXT),
                                                   tf.TensorSpec([], tf.int32, name=signatures.K)])
    def retrieve(self, context, k):
        features = self.base.context_features(context)
        query, _ = self.base.query(context, features)
        searcher = _scann().scann_ops.searcher_from_module(self.searcher)
        neighbors, scores = searcher.search_batched(query, final_num_neighbors=self.max_k)
        neighbors = tf.cast(neighbors, tf.int32)
        if self.popular is not None:   # a user without history: the recent popularity list, as `retrieve` serves
            cold = self.base.cold(features)
            rows = tf.shape(query)[0]
            neighbors = tf.where(cold, tf.tile(self.popular[0][tf.newaxis], [rows, 1]), neighbors)
            scores = tf.where(cold, tf.tile(self.popular[1][tf.newaxis], [rows, 1]), scores)
        k = tf.clip_by_value(k, 1, self.max_k)
        return {signatures.ITEM_IDS: tf.gather(self.base.index_ids, neighbors[:, :k]), signatures.SCORES: scores[:, :k]}


def export_scann_model(serving: retrieval_export.RetrievalServingModel, export_dir: str, **options
                       ) -> ScannRetrievalModel:
    """Writes the ScaNN SavedModel of ``serving`` (the exact model's serving module, e.g.
    :func:`~tfx_pipeline.retrieval_export.export_retrieval_model`'s) to ``export_dir``; ``options``: those of
    :class:`ScannRetrievalModel`."""
    module = ScannRetrievalModel(serving, **options)
    retrieve = module.retrieve.get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures={signatures.RETRIEVE: retrieve})
    return module

"""The Evaluator of a retrieval model: full-ranking metrics of the pushed SavedModel, and its blessing.

Every test row whose label is positive is a (context, clicked item) pair. The served model embeds the context
(``embed_query``) and the row's item (``embed_candidate``: its own side features, so an item outside the index
is still ranked), scores the positive against every item of the index inside the SavedModel (a multi-interest
model's best interest; for a user without history the popularity list ``retrieve`` serves, when the model holds
one), and counts the items above it. Left out of a row's ranking: the positive's own index entry
and the items of the row's behaviour history (the papers' "already seen" exclusion). An item scored equal to the
positive counts one half (the expected rank under random tie-breaking: a constant score earns nothing, and the
popularity list's many equal counts are ranked fairly). Metrics over the rows:

* full ranking over the whole item vocabulary: Recall@K (= HR@K, one positive a row), NDCG@K = 1 / log₂(rank + 2)
  for rank < K, MRR = 1 / (rank + 1), for K in ``TOP_KS``;
* for comparison with papers only (Krichene & Rendle, KDD 2020, show they disagree with full ranking): HR@10 and
  NDCG@10 against ``SAMPLED_NEGATIVES`` negatives drawn uniformly (``sampled_uniform_*``) and by popularity, the
  training positives per item (``sampled_popularity_*``), from the items not excluded;
* rows, and the rows whose item is not in the index (``cold_items``);
* sliced (cold start): Recall@K over the rows whose item is new, not in Transform's vocabulary (``new_items_*``:
  outside the index, or in it through the item feed, :mod:`tfx_pipeline.retrieval_export`), and over the rows
  whose user has no click in the training split (``new_users_*``), with their row counts;
* sliced by the breadth of the user's interests (MIND's claim is about users with several): the number of distinct
  categories in the row's history (the behaviour sequence of the item's first side feature with a vocabulary,
  ``hist_category`` for ``category``), Recall@K of the rows at or below its lower tercile (``few_interests_*``)
  and at or above its upper tercile (``many_interests_*``), with the bounds (``interest_bounds``). Choice: an
  observable proxy (the generator's true interests are not in the data, nor a real log's), and terciles of the
  rows evaluated, so the slices are a third each on any data.

Blessing: Recall@50 (:data:`BLESSING_METRIC`) must clear ``recall_floor`` and must not fall below the last blessed
model's, evaluated now on the same rows (the Evaluator's no-regression rule for ranking models).
"""

import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Set

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx

from feature_spec import spec as spec_lib
from feature_spec.model_inputs import BEHAVIOR, ITEM
from serving import signatures
from serving.examples import split_for_rank
from tfx_pipeline import catalogue

TOP_KS = (10, 50, 100)
SAMPLED_NEGATIVES = 100
BLESSING_METRIC = 'recall_at_50'
METRICS_FILE = 'metrics.json'
BATCH = 256
MAX_ROWS = 200_000


def item_columns(spec: spec_lib.FeatureSpec):
    """``(item id column, history column or None)``: the first id column of the item group, and the behaviour
    sequence sharing its vocabulary (the retrieval models' choice: :mod:`rec_models.retrieval.base`)."""
    item = next((c for c in spec.features if c.group == ITEM and c.is_id and not c.sequence), None)
    if item is None:
        raise ValueError(f'{spec.path}: a retrieval model needs an item id column in the item group')
    history = next((c for c in spec.features if c.group == BEHAVIOR and c.sequence and c.vocabulary is not None
                    and c.vocabulary == item.vocabulary), None)
    return item, history


def read_positives(pattern: str, spec: spec_lib.FeatureSpec, data_format: str,
                   rows: Optional[int] = MAX_ROWS) -> List[bytes]:
    """The serialized (typed, as served) examples of the files of ``pattern`` whose primary label is positive, at
    most ``rows`` (None: all), read as a stream."""
    kept = []
    for serialized, label in catalogue.labelled_examples(pattern, spec, data_format):
        if label > 0.5:
            kept.append(serialized)
            if rows is not None and len(kept) == rows:
                break
    return kept


def popularity(examples: Iterable[bytes], spec: spec_lib.FeatureSpec) -> Dict[str, float]:
    """``{raw item id: rows}`` of serialized examples (the training positives: the popularity of the sampled
    protocol)."""
    item, _ = item_columns(spec)
    counts = {}
    for serialized in examples:
        token = _first_token(tf.train.Example.FromString(serialized).features.feature, item.source)
        if token is not None:
            counts[token] = counts.get(token, 0.0) + 1.0
    return counts


def users(examples: Iterable[bytes], spec: spec_lib.FeatureSpec) -> Set[str]:
    """The user keys (the spec's ``gauc_group``) of serialized examples; empty when the spec names none."""
    if not spec.gauc_group:
        return set()
    return {_first_token(tf.train.Example.FromString(e).features.feature, spec.gauc_group) for e in examples}


def evaluate(loaded, spec: spec_lib.FeatureSpec, examples: Sequence[bytes],
             train_counts: Optional[Dict[str, float]] = None, top_ks: Sequence[int] = TOP_KS, seed: int = 0,
             train_users: Optional[Set[str]] = None) -> Dict[str, float]:
    """The metrics of the module docstring for the served model ``loaded`` (``tf.saved_model.load``) on
    ``examples`` (serialized positives)."""
    index = loaded.index.numpy()
    tokens = [catalogue.token_text(t) for t in loaded.index_ids.numpy()]

    popularity = getattr(loaded, 'popularity', None)
    popularity = None if popularity is None else popularity.numpy()
    trained = getattr(loaded, 'trained_items', None)
    trained = len(tokens) if trained is None else int(trained.numpy())
    position = {token: i for i, token in enumerate(tokens)}
    item, history = item_columns(spec)

    def score(chunk):
        parts = [split_for_rank(e, spec) for e in chunk]
        contexts = tf.constant([p[0].SerializeToString() for p in parts])
        candidates = tf.constant([p[1].SerializeToString() for p in parts])
        query = loaded.signatures[signatures.EMBED_QUERY](context=contexts)
        positives = loaded.signatures[signatures.EMBED_CANDIDATE](candidates=candidates)[signatures.EMBEDDINGS]
        scores, positive_scores = _scores(query, index, positives.numpy())
        if popularity is not None and history is not None:   # retrieve's cold start: the popularity list
            for row, serialized in enumerate(chunk):
                features = tf.train.Example.FromString(serialized).features.feature
                if not _tokens(features, history.source):
                    own = position.get(_first_token(features, item.source))
                    scores[row] = popularity
                    positive_scores[row] = popularity[own] if own is not None else 0.0
        return scores, positive_scores
    return _ranking_metrics(score, tokens, spec, examples, train_counts, top_ks, seed, train_users, trained)


def evaluate_popularity(tokens: Sequence[str], spec: spec_lib.FeatureSpec, examples: Sequence[bytes],
                        train_counts: Dict[str, float], top_ks: Sequence[int] = TOP_KS, seed: int = 0,
                        train_users: Optional[Set[str]] = None) -> Dict[str, float]:
    """The same metrics for the popularity list: every context gets the items by their training positives (the
    baseline every retrieval model must beat)."""
    item, _ = item_columns(spec)
    counts = np.array([train_counts.get(t, 0.0) for t in tokens])

    def score(chunk):
        positive = [train_counts.get(_first_token(tf.train.Example.FromString(e).features.feature, item.source), 0.0)
                    for e in chunk]
        return np.broadcast_to(counts, (len(chunk), len(counts))), np.array(positive)
    return _ranking_metrics(score, list(tokens), spec, examples, train_counts, top_ks, seed, train_users)


def _ranking_metrics(score, tokens: Sequence[str], spec: spec_lib.FeatureSpec, examples: Sequence[bytes],
                     train_counts: Optional[Dict[str, float]], top_ks: Sequence[int], seed: int,
                     train_users: Optional[Set[str]] = None, trained_items: Optional[int] = None
                     ) -> Dict[str, float]:
    """Ranks of each example's positive among the index's items by ``score(chunk) → ([N, n] scores, [N] the
    positives' scores)``, and the metrics of the module docstring; sliced by new items (not among the index's
    first ``trained_items``, the vocabulary's; default all) and, with ``train_users``, by new users (keys not among
    them)."""
    trained_items = len(tokens) if trained_items is None else trained_items
    item, history = item_columns(spec)
    position = {token: i for i, token in enumerate(tokens)}
    popular = np.array([(train_counts or {}).get(t, 0.0) for t in tokens]) + 1.0
    rng = np.random.default_rng(seed)
    ranks, sampled = [], {'uniform': [], 'popularity': []}
    cold = 0
    new_items, new_users, breadth = [], [], []
    categories = interest_column(spec)
    for start in range(0, len(examples), BATCH):
        chunk = list(examples[start:start + BATCH])
        scores, positive_scores = score(chunk)
        for row, serialized in enumerate(chunk):
            features = tf.train.Example.FromString(serialized).features.feature
            own = position.get(_first_token(features, item.source))
            cold += own is None
            new_items.append(own is None or own >= trained_items)
            new_users.append(train_users is not None and spec.gauc_group is not None and
                             _first_token(features, spec.gauc_group) not in train_users)
            if categories is not None:
                breadth.append(len(set(_tokens(features, categories))))
            excluded = np.zeros(len(tokens), bool)
            if own is not None:
                excluded[own] = True
            if history is not None:
                for token in _tokens(features, history.source):
                    seen = position.get(token)
                    if seen is not None:
                        excluded[seen] = True
            kept = ~excluded
            ranks.append(float((scores[row][kept] > positive_scores[row]).sum() +
                               0.5 * (scores[row][kept] == positive_scores[row]).sum()))
            allowed = np.flatnonzero(~excluded)
            count = min(SAMPLED_NEGATIVES, len(allowed))
            for name, weights in (('uniform', None), ('popularity', popular[allowed] / popular[allowed].sum())):
                negatives = rng.choice(allowed, count, replace=False, p=weights)
                sampled[name].append(float((scores[row][negatives] > positive_scores[row]).sum() +
                                           0.5 * (scores[row][negatives] == positive_scores[row]).sum()))
    ranks = np.asarray(ranks, np.float64)
    metrics = {'rows': len(ranks), 'cold_items': int(cold), 'items_indexed': len(tokens)}
    for k in top_ks:
        metrics.update({f'recall_at_{k}': _hit(ranks, k).mean(), f'ndcg_at_{k}': _ndcg(ranks, k).mean()})
    metrics['mrr'] = float((1.0 / (ranks + 1.0)).mean())
    for name, rows in (('new_items', np.array(new_items, bool)), ('new_users', np.array(new_users, bool))):
        metrics[f'{name}_rows'] = int(rows.sum())
        if rows.any():
            metrics.update({f'{name}_recall_at_{k}': _hit(ranks[rows], k).mean() for k in top_ks})
    if breadth:
        breadth = np.asarray(breadth)
        low, high = (float(np.percentile(breadth, q)) for q in (100 / 3, 200 / 3))
        metrics['interest_bounds'] = [low, high]
        for name, rows in (('few_interests', breadth <= low), ('many_interests', breadth >= high)):
            metrics[f'{name}_rows'] = int(rows.sum())
            metrics.update({f'{name}_recall_at_{k}': _hit(ranks[rows], k).mean() for k in top_ks})
    for name, values in sampled.items():
        values = np.asarray(values, np.float64)
        metrics.update({f'sampled_{name}_hr_at_10': _hit(values, 10).mean(),
                        f'sampled_{name}_ndcg_at_10': _ndcg(values, 10).mean()})
    return {k: (round(float(v), 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def interest_column(spec: spec_lib.FeatureSpec) -> Optional[str]:
    """The raw history column whose distinct values count a user's interests (module docstring), or None."""
    item, _ = item_columns(spec)
    pairs = catalogue.history_columns(spec, item.source)
    return next((history for column, history in pairs.items() if column != item.source), None)


def _scores(query, index, positives):
    """``([N, n] scores against the index, [N] the positives' scores)``; a multi-interest query scores by its best
    valid interest."""
    embeddings = query[signatures.EMBEDDINGS].numpy()
    if embeddings.ndim == 2:
        return embeddings @ index.T, np.einsum('nd,nd->n', embeddings, positives)
    mask = query[signatures.INTEREST_MASK].numpy()
    per_interest = np.einsum('nkd,md->nkm', embeddings, index)
    per_interest[~mask] = -np.inf
    positive = np.einsum('nkd,nd->nk', embeddings, positives)
    positive[~mask] = -np.inf
    return per_interest.max(axis=1), positive.max(axis=1)


def _first_token(features, name) -> Optional[str]:
    tokens = _tokens(features, name)
    return tokens[0] if tokens else None


def _tokens(features, name) -> List[str]:
    if name not in features:
        return []
    feature = features[name]
    values = feature.int64_list.value or feature.bytes_list.value or feature.float_list.value
    return [catalogue.token_text(v) for v in values]


def _hit(ranks, k):
    return (ranks < k).astype(np.float64)


def _ndcg(ranks, k):
    return _hit(ranks, k) / np.log2(ranks + 2.0)


def blessing_reasons(metrics: Dict[str, float], baseline: Optional[Dict[str, float]], floor: float) -> List[str]:
    """Why a model is not blessed (empty: blessed): its :data:`BLESSING_METRIC` below ``floor``, or below the last
    blessed model's on the same rows."""
    value = metrics[BLESSING_METRIC]
    reasons = []
    if value < floor:
        reasons.append(f'{BLESSING_METRIC} {value:.4f} is below the floor {floor}')
    if baseline is not None and value < baseline[BLESSING_METRIC] - 1e-10:
        reasons.append(f'{BLESSING_METRIC} {value:.4f} is below the last blessed model\'s '
                       f'{baseline[BLESSING_METRIC]:.4f}')
    return reasons


def serving_dir(model_uri: str) -> str:
    """The SavedModel directory of a Trainer's Model artifact."""
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    return path_utils.serving_model_path(model_uri)


@tfx.dsl.components.component
def RetrievalEvaluator(  # pylint: disable=invalid-name
        model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
        evaluation: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelEvaluation],
        blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelBlessing],
        feature_spec: tfx.dsl.components.Parameter[str],
        data_format: tfx.dsl.components.Parameter[str],
        test_pattern: tfx.dsl.components.Parameter[str],
        train_pattern: tfx.dsl.components.Parameter[str],
        recall_floor: tfx.dsl.components.Parameter[float] = 0.0,
        baseline_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model] = None):
    """Writes ``metrics.json`` (the model's metrics, and the baseline's when there is one) and blesses the model when
    its Recall@50 clears the floor and does not fall below the last blessed model's."""
    spec = spec_lib.load(feature_spec)
    examples = read_positives(test_pattern, spec, data_format)
    train = read_positives(train_pattern, spec, data_format, rows=None)
    counts, known = popularity(train, spec), users(train, spec)
    metrics = evaluate(tf.saved_model.load(serving_dir(model.uri)), spec, examples, counts, train_users=known)
    result = {'model': metrics}
    if baseline_model is not None:
        result['baseline'] = evaluate(tf.saved_model.load(serving_dir(baseline_model.uri)), spec, examples, counts,
                                      train_users=known)
    reasons = blessing_reasons(metrics, result.get('baseline'), recall_floor)
    if baseline_model is not None:
        blessing.set_string_custom_property('baseline_model', baseline_model.uri)
        blessing.set_int_custom_property('baseline_model_id', baseline_model.id)
    with tf.io.gfile.GFile(os.path.join(evaluation.uri, METRICS_FILE), 'w') as f:
        json.dump({**result, 'not_blessed_because': reasons}, f, indent=1)
    blessing.set_string_custom_property('current_model', model.uri)
    blessing.set_int_custom_property('current_model_id', model.id)
    blessed = not reasons
    with tf.io.gfile.GFile(os.path.join(blessing.uri, 'BLESSED' if blessed else 'NOT_BLESSED'), 'w') as f:
        f.write('\n'.join(reasons))
    blessing.set_int_custom_property('blessed', int(blessed))


def read_metrics(evaluation_uri: str) -> Dict[str, float]:
    """The model's metrics from a RetrievalEvaluator output."""
    with tf.io.gfile.GFile(os.path.join(evaluation_uri, METRICS_FILE)) as f:
        return json.load(f)['model']


"""A toy model input set with every kind of input the registered models read (profile, target, context,
behaviour sequences, DSIN's sessions, the auxiliary groups, training-only positions and privileged features, and
every label role), and random features for it: shared by the model tests."""

import dataclasses
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from feature_spec.model_inputs import (AuxiliaryInputs, FeatureCross, InputField, ModelInputs,  # noqa: E402
                                       SessionInputs)
from rec_models import registry  # noqa: E402
from rec_models.layers import FieldEmbedding  # noqa: E402

B, L, D = 32, 5, 4
K, T = 3, 2  # sessions, steps a session
SMALL = {'hidden_units': (16, 8), 'l2': 0.0, 'dropout': 0.0, 'transformer_dropout': 0.0,  # deterministic training calls
         'position_dropout': 0.0, 'gate_dropout': 0.0, 'tower_units': (8,), 'expert_units': (8,),
         'latent_dim': 16, 'lstm_units': 16}


# The models make test-fast runs the registry-wide tests for: one of each family and kind (a history model with an
# auxiliary loss, an interaction model, multi-head, a product of heads, an update schedule, training-only inputs).
FAST_MODELS = ('dien', 'din', 'deepfm', 'dstn', 'esm2', 'mmoe', 'pal', 'adversarial_debiasing',
               'privileged_distillation', 'youtube_ranker', 'two_tower', 'youtube_dnn')


def every_model(kind=registry.RANKING):
    """The registered names of one kind (ranking by default) as test parameters, those beyond :data:`FAST_MODELS`
    marked ``every_model``."""
    return [name if name in FAST_MODELS else pytest.param(name, marks=pytest.mark.every_model)
            for name in registry.names_of_kind(kind)]


def _accepted(name):
    return registry.hparam_names(registry.get(name)[0])


def _small(name, **overrides):
    """SMALL and ``overrides``, less the hyper-parameters model ``name`` does not have."""
    return {k: v for k, v in {**SMALL, **overrides}.items() if k in _accepted(name)}


def _uses_history(name) -> bool:
    """Whether model ``name`` with its defaults reads the behaviour sequences (the FM family only with
    ``use_behavior``, off by default)."""
    return 'use_behavior' not in _accepted(name)


def _embedding_tables(model) -> dict:
    return {f'{layer.name}/{table}': weights for layer in model._flatten_layers()  # pylint: disable=protected-access
            if isinstance(layer, FieldEmbedding) for table, weights in layer.tables.items()}


def _categorical(name, group, vocab, table=None):
    return InputField(name, 'categorical', group, table=table or name, vocab_size=vocab, embedding_dim=D)


def _sequence(name, table, vocab, query, group='behavior', length=L):
    return InputField(name, 'sequence', group, table=table, vocab_size=vocab, embedding_dim=D, max_length=length,
                      query=query)


# The auxiliary groups of the synthetic spec (searches, DSTN's context and unclicked ads), each with its own length.
AUXILIARY = (
    AuxiliaryInputs('search', (
        _categorical('query', 'search', 9), _sequence('hist_query', 'query', 9, None, 'search', 4),
        _sequence('hist_query_time_gap', 'hist_query_time_gap', 8, None, 'search', 4)), 'query_history_length'),
    AuxiliaryInputs('page_context', (
        _sequence('context_item_id', 'item_id', 30, 'item_id', 'page_context', 3),
        _sequence('context_category', 'category', 6, 'category', 'page_context', 3)), 'context_length'),
    AuxiliaryInputs('unclicked', (
        _sequence('unclicked_item_id', 'item_id', 30, 'item_id', 'unclicked', 6),
        _sequence('unclicked_category', 'category', 6, 'category', 'unclicked', 6),
        _sequence('unclicked_time_gap', 'unclicked_time_gap', 8, None, 'unclicked', 6)), 'unclicked_length'),
)


# Labels and their roles, as the synthetic spec has them (every head of every model is trained here).
LABELS = ('click', 'cart', 'purchase', 'satisfied')
ROLES = {'click': 'click', 'd_action': 'cart', 'conversion': 'purchase', 'satisfaction': 'satisfied'}
# Training-only inputs: a position with its training CTR per id (id 1 the first position) and a privileged number.
POSITIONS = 5
TRAINING_ONLY = (
    InputField('position', 'categorical', 'position', table='position', vocab_size=POSITIONS + 1, embedding_dim=D,
               label_rates=(0.0, 0.3, 0.2, 0.15, 0.1, 0.05), first_id=1),
    InputField('page_dwell', 'numeric', 'privileged'),
)

INPUTS = ModelInputs(fields=(
    _categorical('user_id', 'user', 40), _categorical('gender', 'user', 3),
    InputField('purchase_power', 'numeric', 'user'),
    _categorical('item_id', 'item', 30), _categorical('category', 'item', 6),
    InputField('price', 'numeric', 'item'),
    _categorical('hour', 'context', 25),
    _sequence('hist_item_id', 'item_id', 30, 'item_id'), _sequence('hist_category', 'category', 6, 'category'),
    _sequence('hist_time_gap', 'hist_time_gap', 8, None),
), sequence_length='hist_length', crosses=(FeatureCross('gender_x_category', ('gender', 'category'), 50),),
    labels=LABELS, label_roles=tuple(sorted(ROLES.items())), training_only=TRAINING_ONLY)
INPUTS = dataclasses.replace(INPUTS, sessions=SessionInputs(
    fields=tuple(dataclasses.replace(f, name=f'{f.name}_sessions', kind='session', max_length=T)
                 for f in INPUTS.of_kind('sequence')), max_sessions=K, length_feature='session_lengths'),
    auxiliary=AUXILIARY)


def _features(seed=0, n=B):
    rng = np.random.default_rng(seed)
    length = rng.integers(0, L + 1, n)
    features = {'hist_length': length.astype(np.int64), 'click': rng.integers(0, 2, n),
                'request_id': np.arange(n).astype(np.int64)}
    for field in INPUTS.fields:
        if field.kind == 'numeric':
            features[field.name] = rng.normal(size=n).astype(np.float32)
        elif field.kind == 'categorical':
            features[field.name] = rng.integers(1, field.vocab_size, n).astype(np.int64)
        else:
            ids = rng.integers(1, field.vocab_size, (n, L)).astype(np.int64)
            ids[np.arange(L)[None] >= length[:, None]] = 0
            features[field.name] = ids
    sessions = rng.integers(0, T + 1, (n, K))
    sessions[np.arange(K)[None] >= rng.integers(0, K + 1, n)[:, None]] = 0  # empty slots after the used ones
    features['session_lengths'] = sessions.astype(np.int64)
    for field in INPUTS.sessions.fields:
        ids = rng.integers(1, field.vocab_size, (n, K, T)).astype(np.int64)
        ids[np.arange(T)[None, None] >= sessions[..., None]] = 0
        features[field.name] = ids.reshape(n, K * T)
    for group in AUXILIARY:
        steps = group.fields[-1].max_length
        lengths = rng.integers(0, steps + 1, n)
        features[group.length_feature] = lengths.astype(np.int64)
        for field in group.fields:
            if field.kind == 'categorical':
                features[field.name] = rng.integers(1, field.vocab_size, n).astype(np.int64)
            else:
                ids = rng.integers(1, field.vocab_size, (n, steps)).astype(np.int64)
                ids[np.arange(steps)[None] >= lengths[:, None]] = 0
                features[field.name] = ids
    features.update(position=rng.integers(1, POSITIONS + 1, n).astype(np.int64),
                    page_dwell=rng.normal(size=n).astype(np.float32))
    for label in LABELS[1:]:  # every other label follows a click
        features[label] = features['click'] * rng.integers(0, 2, n)
    return features


def _with_noisy_padding(features, seed=1):
    rng = np.random.default_rng(seed)
    noisy = dict(features)
    padded = np.arange(L)[None] >= features['hist_length'][:, None]
    for field in INPUTS.of_kind('sequence'):
        noisy[field.name] = np.where(padded, rng.integers(1, field.vocab_size, (len(padded), L)), features[field.name])
    session_padded = (np.arange(T)[None, None] >= features['session_lengths'][..., None]).reshape(len(padded), K * T)
    for field in INPUTS.sessions.fields:
        noisy[field.name] = np.where(session_padded, rng.integers(1, field.vocab_size, session_padded.shape),
                                     features[field.name])
    for group in AUXILIARY:
        for field in group.fields:
            if field.kind == 'sequence':
                group_padded = np.arange(field.max_length)[None] >= features[group.length_feature][:, None]
                noisy[field.name] = np.where(group_padded, rng.integers(1, field.vocab_size, group_padded.shape),
                                             features[field.name])
    return noisy


# Retrieval toy rules: the indexed item ids of INPUTS are 1 … TOY_ITEMS.
TOY_ITEMS = INPUTS['item_id'].vocab_size - 1


def stride_rows(seed, n):
    """The learnable rule: a history i_j = (s + j·k) mod 29 + 1 with a start s, a stride k ∈ {1, 2, 3} and 2…5 items;
    the target continues it. Knowing the stride takes the last two items."""
    rng = np.random.default_rng(seed)
    features = _features(seed, n)
    start, stride, length = rng.integers(0, TOY_ITEMS, n), rng.integers(1, 4, n), rng.integers(2, L + 1, n)
    sequence = (start[:, None] + stride[:, None] * np.arange(L + 1)[None]) % TOY_ITEMS + 1
    features.update(hist_item_id=np.where(np.arange(L)[None] < length[:, None], sequence[:, :L], 0).astype(np.int64),
                    hist_length=length.astype(np.int64), item_id=sequence[np.arange(n), length].astype(np.int64),
                    click=np.ones(n, np.int64))
    return features


def popularity_recall(train, test, k):
    """Recall@k of ranking by training-target counts, the history excluded and ties in the target's favour (as the
    model's positive_rank counts them)."""
    counts = np.bincount(train['item_id'], minlength=TOY_ITEMS + 1).astype(float)
    hits = []
    for history, n, target in zip(test['hist_item_id'], test['hist_length'], test['item_id']):
        above = counts[1:] > counts[target]
        above[np.setdiff1d(history[:n], [target]) - 1] = False
        hits.append(above.sum() < k)
    return float(np.mean(hits))


def rows_with_lengths(lengths, seed=0, clicks=None):
    """Toy features whose histories have the given lengths (valid steps: random ids 1…29, padding 0)."""
    lengths = np.asarray(lengths, np.int64)
    features = _features(seed, len(lengths))
    rng = np.random.default_rng(seed + 100)
    ids = rng.integers(1, TOY_ITEMS + 1, (len(lengths), L))
    features['hist_item_id'] = np.where(np.arange(L)[None] < lengths[:, None], ids, 0).astype(np.int64)
    features['hist_length'] = lengths
    features['click'] = np.ones(len(lengths), np.int64) if clicks is None else np.asarray(clicks, np.int64)
    return features


def layer_norm_reference(x, norm):
    gamma, beta = (w.numpy() for w in norm.weights)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * gamma + beta

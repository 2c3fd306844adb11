"""TransRec (rec_models.retrieval.transrec): the inner-product form against the distance form, the unit ball, the
new-user rule, the S-BPR loss against NumPy, and training on a toy personalised transition rule against
popularity."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402
from rec_models import registry  # noqa: E402
from rec_models.retrieval.transrec import NEGATIVE_IDS, NEGATIVE_MASK, TRANSREC_LOSS  # noqa: E402
from rec_models.tasks.retrieval import POSITIVE_RANK  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

D = 6
V = INPUTS['item_id'].vocab_size


def _project(x):
    return x / np.maximum(1.0, np.linalg.norm(x, axis=-1, keepdims=True))


def _model(seed=0, **hparams):
    """A model with random parameters, some γ outside the unit ball."""
    tf.keras.utils.set_random_seed(seed)
    model = registry.build('transrec', INPUTS, {'embedding_dim': D, 'num_negatives': 4, **hparams})
    model.set_catalogue({}, index_size=V - 1)
    model(_features())
    rng = np.random.default_rng(seed)
    model.gamma.assign(rng.normal(0.0, 0.8, model.gamma.shape))
    model.beta.assign(rng.normal(0.0, 1.0, model.beta.shape))
    model.translation.assign(rng.normal(0.0, 0.3, D))
    if model.user_translations is not None:
        model.user_translations.assign(rng.normal(0.0, 0.3, model.user_translations.shape))
    return model


def _previous(features):
    length = features['hist_length']
    last = features['hist_item_id'][np.arange(len(length)), np.maximum(length - 1, 0)]
    return np.where(length > 0, last, 0)


def _translated(model, features, user_offsets=True):
    """x = γ̃_i + t + t_u in NumPy."""
    x = _project(model.gamma.numpy()[_previous(features)]) + model.translation.numpy()
    if user_offsets:
        users = features['user_id']
        x += model.user_translations.numpy()[users] * (users > 0)[:, None]
    return x


def _distance_scores(model, x):
    """β_j − ‖x − γ̃_j‖² ``[B, V]``."""
    points = _project(model.gamma.numpy())
    return model.beta.numpy()[None] - ((x[:, None, :] - points[None]) ** 2).sum(-1)


def test_the_inner_product_form_ranks_items_exactly_as_the_distance_form():
    model = _model()
    features = _features(seed=1, n=40)
    assert (np.linalg.norm(model.gamma.numpy(), axis=1) > 1).sum() > 5
    query = model.query_embedding(features).numpy()
    index = model.index_embeddings().numpy()
    assert query.shape == (40, D + 1) and index.shape == (V, D + 1)
    np.testing.assert_array_less(np.linalg.norm(index[:, :D], axis=1), 1 + 1e-6)     # γ̃ in the unit ball
    x = _translated(model, features)
    inner, distance = query @ index.T, _distance_scores(model, x)
    np.testing.assert_allclose(inner - distance, np.repeat((x ** 2).sum(1, keepdims=True), V, 1), rtol=1e-4,
                               atol=1e-4)                                              # + ‖x‖², per query
    indexed = slice(1, V)
    np.testing.assert_array_equal(np.argsort(-inner[:, indexed], 1), np.argsort(-distance[:, indexed], 1))
    # the evaluation rank is the distance form's (the row's positive, its history and id 0 left out)
    ranks = model(features)[POSITIVE_RANK].numpy()
    for row in range(40):
        positive = features['item_id'][row]
        seen = set(features['hist_item_id'][row, :features['hist_length'][row]])
        above = [j for j in range(1, V) if j != positive and j not in seen and
                 distance[row, j] > distance[row, positive]]
        assert ranks[row] == len(above)


def test_a_new_user_gets_no_personal_translation():
    model = _model()
    features = _features(seed=2)
    missing = dict(features, user_id=np.zeros_like(features['user_id']))
    outside = dict(features, user_id=np.full_like(features['user_id'], INPUTS['user_id'].vocab_size + 7))
    expected = 2 * _translated(model, features, user_offsets=False)                   # T_u = t
    for new in (missing, outside):
        np.testing.assert_allclose(model.query_embedding(new).numpy()[:, :D], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.query_embedding(features).numpy()[:, :D], 2 * _translated(model, features),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.query_embedding(features).numpy()[:, :D], expected)


def test_the_user_translation_is_optional():
    assert registry.build('transrec', INPUTS).user.name == 'user_id'                     # auto: found
    assert registry.build('transrec', INPUTS, {'user_field': 'gender'}).user.name == 'gender'
    no_user = dataclasses.replace(INPUTS, fields=tuple(f for f in INPUTS.fields if f.name != 'user_id'))
    anonymous = registry.build('transrec', no_user)                                    # auto: none there
    assert anonymous.user is None and anonymous.user_translations is None
    assert registry.build('transrec', INPUTS, {'user_field': None}).user_translations is None
    with pytest.raises(ValueError, match='user_field'):
        registry.build('transrec', INPUTS, {'user_field': 'purchase_power'})
    for bad in ({'embedding_dim': 0}, {'num_negatives': 0}, {'l2': -1.0}, {'user_field': 3}):
        with pytest.raises(ValueError):
            registry.validate('transrec', bad)


def _sbpr_reference(model, features, negatives, rows):
    x = _translated(model, features)
    scores = _distance_scores(model, x)
    terms = []
    for row in range(len(negatives)):
        if not rows[row]:
            continue
        positive = features['item_id'][row]
        seen = set(features['hist_item_id'][row, :features['hist_length'][row]])
        for negative in negatives[row]:
            if negative != positive and negative not in seen:
                terms.append(np.logaddexp(0.0, -(scores[row, positive] - scores[row, negative])))   # −ln σ(·)
    return np.mean(terms), len(terms)


def test_the_sbpr_loss_equals_its_equation():
    model = _model()
    features = _features(seed=3)
    rows = (features['click'] > 0).astype(np.float32)
    outputs = model(features, training=True)
    negatives = outputs[NEGATIVE_IDS].numpy()
    assert negatives.min() >= 1 and negatives.max() <= V - 1
    expected, count = _sbpr_reference(model, features, negatives, rows)
    assert float(outputs[TRANSREC_LOSS]) == pytest.approx(expected, rel=1e-4)
    assert outputs[NEGATIVE_MASK].numpy().sum() == count
    # draws that hit the row's positive or its history do not count
    chosen = np.stack([features['item_id'], features['hist_item_id'][:, 0], np.full(32, 7), np.full(32, 11)], 1)
    loss, counted = model.sbpr_loss(features, tf.constant(chosen), tf.constant(rows))
    expected, count = _sbpr_reference(model, features, chosen, rows)
    assert float(loss) == pytest.approx(expected, rel=1e-4) and counted.numpy().sum() == count
    assert counted.numpy()[:, 0].sum() == 0
    assert TRANSREC_LOSS in model(features)                                            # evaluation too


# The toy rule: items 1…40 on a line; odd users walk up it, even users down; the next item is the previous one plus
# the user's step (90 %), or a random item. (The history, left out of the ranking, tells the two directions apart as
# well as t_u does: a translation fits the rule either way.) Users 1…40 are seen in training; ids 41…50 never are.
ITEMS, USERS, SEEN_USERS, STEPS = 40, 50, 40, 4
TOY = ModelInputs(fields=(
    InputField('user_id', 'categorical', 'user', table='user_id', vocab_size=USERS + 1, embedding_dim=4),
    InputField('item_id', 'categorical', 'item', table='item_id', vocab_size=ITEMS + 1, embedding_dim=4),
    InputField('hist_item_id', 'sequence', 'behavior', table='item_id', vocab_size=ITEMS + 1, embedding_dim=4,
               max_length=STEPS, query='item_id'),
), sequence_length='hist_length', labels=('click',))


def _toy(rng, n):
    users = rng.integers(1, SEEN_USERS + 1, n)
    step = np.where(users % 2 == 1, 1, -1)
    length = rng.integers(1, STEPS + 1, n)
    start = np.where(step > 0, rng.integers(1, ITEMS - STEPS + 1, n), rng.integers(STEPS + 1, ITEMS + 1, n))
    walk = start[:, None] + step[:, None] * np.arange(STEPS)[None]
    history = np.where(np.arange(STEPS)[None] < length[:, None], walk, 0)
    nxt = walk[np.arange(n), length - 1] + step
    target = np.where(rng.random(n) < 0.9, nxt, rng.integers(1, ITEMS + 1, n))
    return {'user_id': users, 'item_id': target, 'hist_item_id': history, 'hist_length': length,
            'click': np.ones(n, np.float32)}


def _popularity_recall(counts, test, k=10):
    hits = []
    for row in range(len(test['item_id'])):
        positive = test['item_id'][row]
        seen = set(test['hist_item_id'][row, :test['hist_length'][row]])
        hits.append(sum(counts[j] > counts[positive] for j in range(1, ITEMS + 1)
                        if j != positive and j not in seen) < k)
    return float(np.mean(hits))


def test_learns_a_transition_rule_and_beats_popularity():
    rng = np.random.default_rng(0)
    train, test = _toy(rng, 4000), _toy(rng, 500)
    counts = np.bincount(train['item_id'], minlength=ITEMS + 1).astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model = registry.build('transrec', TOY, {'embedding_dim': 8, 'num_negatives': 8, 'top_ks': (10, 50)})
    model.set_catalogue({}, index_size=ITEMS, counts=counts)
    model.compile(tf.keras.optimizers.Adam(0.05))
    model.fit(train, epochs=8, batch_size=200, verbose=0)
    result = model.evaluate(test, batch_size=500, return_dict=True, verbose=0)
    baseline = _popularity_recall(counts, test)
    print(f"TransRec recall@10 {result['recall_at_10']:.3f} (MRR {result['mrr']:.3f}), popularity {baseline:.3f}")
    assert result['recall_at_10'] > baseline + 0.4, (result, baseline)
    # users no training batch carried keep t_u = 0 exactly: they are served T_u = t, as id 0 is
    offsets = model.user_translations.numpy()
    assert np.all(offsets[SEEN_USERS + 1:] == 0) and np.all(np.abs(offsets[1:SEEN_USERS + 1]).sum(1) > 0)
    unseen, missing = dict(test, user_id=np.full(500, USERS)), dict(test, user_id=np.zeros(500, np.int64))
    np.testing.assert_array_equal(model.query_embedding(unseen), model.query_embedding(missing))

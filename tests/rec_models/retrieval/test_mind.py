"""MIND (rec_models.retrieval.mind): the routing's randomness in training and determinism at serving, the adaptive
interest count reaching the served interests, the label-aware attention, best-interest scoring, padding
invariance, and training on a toy multi-interest rule against popularity."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from feature_spec.model_inputs import InputField, ModelInputs  # noqa: E402
from rec_models import registry  # noqa: E402
from rec_models.layers import adaptive_interest_count  # noqa: E402
from rec_models.tasks.retrieval import POSITIVE_RANK, QUERY  # noqa: E402
from toy_inputs import INPUTS, _features, _with_noisy_padding  # noqa: E402  pylint: disable=wrong-import-order

HPARAMS = {'embedding_dim': 8, 'hidden_units': (16,), 'num_interests': 3, 'num_sampled': 10}
V = INPUTS['item_id'].vocab_size


def _float_label(features):
    return dict(features, click=features['click'].astype(np.float32))


def _model(seed=0, **hparams):
    tf.keras.utils.set_random_seed(seed)
    model = registry.build('mind', INPUTS, {**HPARAMS, **hparams})
    rng = np.random.default_rng(seed)
    model.set_catalogue({'category': rng.integers(1, 6, V), 'price': rng.normal(size=V)}, index_size=V - 1)
    model(_features())
    return model


def test_routing_is_drawn_afresh_in_training_and_fixed_at_serving():
    model = _model()
    features = _features()
    first, _ = model.query_embedding(features, training=True)
    second, _ = model.query_embedding(features, training=True)
    assert not np.allclose(first, second)
    served, mask = model.query_embedding(features, training=False)
    np.testing.assert_array_equal(served, model.query_embedding(features, training=False)[0])
    # a user's served interests do not depend on the rest of the batch
    alone = {name: value[:5] for name, value in features.items()}
    np.testing.assert_allclose(model.query_embedding(alone)[0], served[:5], rtol=1e-5, atol=1e-6)
    assert mask.shape == (len(features['item_id']), 3)


def test_adaptive_interest_count_masks_the_served_interests_and_scores_take_the_best_valid_one():
    model = _model()
    features = _features(seed=3, n=48)
    outputs = model(features)
    vectors, mask = (t.numpy() for t in (outputs['query_embedding'], outputs['interest_mask']))
    expected = np.arange(3)[None] < adaptive_interest_count(features['hist_length'], 3).numpy()[:, None]
    np.testing.assert_array_equal(mask, expected)
    assert {1, 2} <= set(mask.sum(1))                          # lengths 0…5 give K' = 1 and 2
    index = model.index_embeddings().numpy()
    per_interest = np.einsum('bkd,nd->bkn', vectors, index)
    best_valid = np.where(mask[:, :, None], per_interest, -np.inf).max(1)
    np.testing.assert_allclose(model.scores(tf.constant(vectors), tf.constant(index), tf.constant(mask)),
                               best_valid, rtol=1e-5, atol=1e-5)
    assert not np.allclose(per_interest.max(1), best_valid)   # the masked interests would change the scores
    # the evaluation rank is the best valid interest's: items above the positive, seen items and itself left out
    # (the positive is embedded from the row's own item features, the index from the catalogue's)
    target = model.candidate_embedding(model.item_features(features)).numpy()
    positive_scores = np.where(mask, np.einsum('bkd,bd->bk', vectors, target), -np.inf).max(1)
    for row in range(len(mask)):
        positive = features['item_id'][row]
        seen = set(features['hist_item_id'][row, :features['hist_length'][row]])
        counted = [j for j in range(1, V) if j != positive and j not in seen]
        rank = sum(best_valid[row, j] > positive_scores[row] for j in counted)
        assert outputs[POSITIVE_RANK].numpy()[row] == rank


def test_label_aware_attention_picks_the_interest_closest_to_the_target_for_large_p():
    sharp = _model(power=1e4)
    features = _features(seed=4, n=64)
    outputs = sharp(features)
    vectors, mask = outputs['query_embedding'].numpy(), outputs['interest_mask'].numpy()
    target = sharp.candidate_embedding(sharp.item_features(features)).numpy()
    scores = np.where(mask, np.einsum('bkd,bd->bk', vectors, target), -np.inf)
    best = vectors[np.arange(len(mask)), scores.argmax(1)]
    ordered = np.sort(scores, axis=1)
    clear = (mask.sum(1) == 1) | (ordered[:, -1] - ordered[:, -2] > 1e-2)    # no near-tie between the top two
    assert clear.sum() > 40
    np.testing.assert_allclose(outputs[QUERY].numpy()[clear], best[clear], rtol=1e-4, atol=1e-5)
    assert (mask.sum(1) > 1).sum() > 10
    flat = _model(power=0.0)                                    # p = 0: the mean of the valid interests
    outputs = flat(features)
    vectors, mask = outputs['query_embedding'].numpy(), outputs['interest_mask'].numpy()
    mean = (vectors * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(outputs[QUERY], mean, rtol=1e-5, atol=1e-6)


def test_padded_history_steps_do_not_change_the_served_interests():
    model = _model()
    features = _features(seed=5)
    noisy = _with_noisy_padding(features, seed=6)
    assert any(not np.array_equal(features[f], noisy[f]) for f in ('hist_item_id', 'hist_category'))
    for clean, changed in zip(model.query_embedding(features), model.query_embedding(noisy)):
        np.testing.assert_array_equal(clean, changed)


@pytest.mark.parametrize('negatives', ['sampled', 'in_batch'])
def test_both_losses_train(negatives):
    model = _model(negatives=negatives)
    model.compile(tf.keras.optimizers.Adam(0.01))
    history = model.fit(_float_label(_features(seed=7, n=64)), epochs=1, batch_size=32, verbose=0).history
    assert np.isfinite(history['loss']).all()
    assert (model.task('sampled_softmax') if negatives == 'sampled' else model.task('retrieval')).weight == 1.0


def test_hyperparameters_are_checked():
    for bad in ({'negatives': 'full'}, {'num_interests': 0}, {'iterations': 0}, {'power': -1.0},
                {'uniform_negatives': 5}, {'temperature': 0.0}, {'interest_dim': 0}):
        with pytest.raises(ValueError):
            registry.validate('mind', bad)
    registry.validate('mind', {'negatives': 'in_batch', 'uniform_negatives': 5})
    assert _model(negatives='sampled').hparams['logq'] == 'none'


# The toy rule: 6 categories of 10 items; a user likes 2 categories, her history holds items of both, the target is
# another item of one of them. Popularity is uniform here; a model that finds both interests ranks the ~12 unseen
# items of the user's categories first.
ITEMS, CATEGORIES, STEPS = 60, 6, 8
TOY = ModelInputs(fields=(
    InputField('gender', 'categorical', 'user', table='gender', vocab_size=3, embedding_dim=4),
    InputField('item_id', 'categorical', 'item', table='item_id', vocab_size=ITEMS + 1, embedding_dim=4),
    InputField('category', 'categorical', 'item', table='category', vocab_size=CATEGORIES + 1, embedding_dim=4),
    InputField('hist_item_id', 'sequence', 'behavior', table='item_id', vocab_size=ITEMS + 1, embedding_dim=4,
               max_length=STEPS, query='item_id'),
    InputField('hist_category', 'sequence', 'behavior', table='category', vocab_size=CATEGORIES + 1,
               embedding_dim=4, max_length=STEPS, query='category'),
), sequence_length='hist_length', labels=('click',))


def _category(ids):
    return np.where(ids > 0, (ids - 1) // 10 + 1, 0)


def _toy(rng, n):
    likes = np.stack([rng.choice(CATEGORIES, 2, replace=False) for _ in range(n)])            # 0-based
    length = rng.integers(4, STEPS + 1, n)
    history = np.zeros((n, STEPS), np.int64)
    target = np.zeros(n, np.int64)
    for row in range(n):
        items = np.stack([rng.permutation(10), rng.permutation(10)])      # each category's items, in order of use
        picks = rng.integers(0, 2, length[row])                     # which of her categories each step is
        used = {0: 0, 1: 0}
        for step, pick in enumerate(picks):
            history[row, step] = likes[row, pick] * 10 + items[pick, used[pick]] + 1
            used[pick] += 1
        pick = rng.integers(0, 2)
        target[row] = likes[row, pick] * 10 + items[pick, used[pick]] + 1     # unseen, of one of her categories
    return {'gender': rng.integers(1, 3, n), 'item_id': target, 'category': _category(target),
            'hist_item_id': history, 'hist_category': _category(history), 'hist_length': length.astype(np.int64),
            'click': np.ones(n, np.float32)}


def test_learns_a_two_interest_rule_and_beats_popularity():
    rng = np.random.default_rng(0)
    train, test = _toy(rng, 3000), _toy(rng, 500)
    tf.keras.utils.set_random_seed(0)
    model = registry.build('mind', TOY, {'embedding_dim': 16, 'hidden_units': (32,), 'num_interests': 3,
                                         'top_ks': (10, 50)})
    counts = np.bincount(train['item_id'], minlength=ITEMS + 1).astype(np.float32)
    model.set_catalogue({'category': _category(np.arange(ITEMS + 1))}, index_size=ITEMS, counts=counts)
    model.compile(tf.keras.optimizers.Adam(0.01))
    model.fit(train, epochs=6, batch_size=100, verbose=0)
    recall = model.evaluate(test, batch_size=250, return_dict=True, verbose=0)['recall_at_10']
    popular = []                                      # popularity, ranked as the model is (seen items left out)
    for row in range(len(test['item_id'])):
        positive = test['item_id'][row]
        seen = set(test['hist_item_id'][row, :test['hist_length'][row]])
        above = sum(counts[j] > counts[positive] for j in range(1, ITEMS + 1) if j != positive and j not in seen)
        popular.append(above < 10)
    baseline = float(np.mean(popular))
    print(f'MIND recall@10 {recall:.3f}, popularity {baseline:.3f}')
    assert recall > baseline + 0.3, (recall, baseline)

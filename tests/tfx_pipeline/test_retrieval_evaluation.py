"""The retrieval Evaluator's arithmetic: full-ranking ranks and metrics from given scores (ties one half, the
positive's own entry and the history left out), the popularity baseline, and the blessing rule."""

import numpy as np
import pytest
import tensorflow as tf

from feature_spec import spec as spec_lib
from tfx_pipeline import retrieval_evaluation

from pipeline_cli import REPO

SPEC = spec_lib.load(f'{REPO}/feature_spec/specs/synthetic.yaml')
TOKENS = [str(i) for i in range(1, 11)]      # ten indexed items, raw ids 1 … 10


def _example(item, history=()):
    example = tf.train.Example()
    example.features.feature['item_id'].int64_list.value.append(item)
    example.features.feature['hist_item_id'].int64_list.value.extend(history)
    return example.SerializeToString()


def test_ranks_leave_out_the_positive_and_the_history_and_count_ties_one_half():
    examples = [_example(3), _example(3, history=[9, 10]), _example(5)]
    scores = np.array([[1, 2, 5, 3, 4, 0, 0, 0, 9, 9]] * 3, np.float64)   # item j's score in column j − 1

    def score(chunk):
        positives = np.array([5.0, 5.0, 4.0])[:len(chunk)]
        return scores[:len(chunk)], positives
    metrics = retrieval_evaluation._ranking_metrics(score, TOKENS, SPEC, examples, None, (1, 3), seed=0)
    # Row 0: items 9 and 10 (9) above its 5, item 3's own entry left out → rank 2. Row 1: 9 and 10 are its history
    # → rank 0. Row 2 (positive 5, score 4): items 3 (5), 9, 10 above, item 4 scores 3 → rank 3, plus its own
    # entry left out.
    assert metrics['recall_at_1'] == pytest.approx(1 / 3)
    assert metrics['recall_at_3'] == pytest.approx(2 / 3)
    assert metrics['mrr'] == pytest.approx((1 / 3 + 1 + 1 / 4) / 3)
    assert metrics['ndcg_at_3'] == pytest.approx((1 / np.log2(4) + 1) / 3)
    tied = retrieval_evaluation._ranking_metrics(lambda c: (np.zeros((len(c), 10)), np.zeros(len(c))), TOKENS, SPEC,
                                                 examples[:1], None, (1,), seed=0)
    assert tied['mrr'] == pytest.approx(1 / (1 + 4.5))   # nine other items all tied: rank 4.5


def test_popularity_ranks_by_training_clicks():
    counts = {'3': 10.0, '5': 4.0, '7': 6.0}
    metrics = retrieval_evaluation.evaluate_popularity(TOKENS, SPEC, [_example(3), _example(5), _example(7)], counts,
                                                       top_ks=(1, 2))
    assert metrics['recall_at_1'] == pytest.approx(1 / 3) and metrics['recall_at_2'] == pytest.approx(2 / 3)


def test_blessing_needs_the_floor_and_no_regression():
    assert retrieval_evaluation.blessing_reasons({'recall_at_50': 0.3}, None, 0.2) == []
    assert retrieval_evaluation.blessing_reasons({'recall_at_50': 0.3}, {'recall_at_50': 0.3}, 0.0) == []
    [floor] = retrieval_evaluation.blessing_reasons({'recall_at_50': 0.1}, None, 0.2)
    assert 'floor' in floor
    [regression] = retrieval_evaluation.blessing_reasons({'recall_at_50': 0.29}, {'recall_at_50': 0.3}, 0.0)
    assert 'last blessed' in regression


def test_metrics_sliced_by_new_items_and_new_users():
    def keyed(item, user):
        example = tf.train.Example.FromString(_example(item))
        example.features.feature['user_id'].int64_list.value.append(user)
        return example.SerializeToString()
    examples = [keyed(3, 1), keyed(42, 1), keyed(5, 2)]        # item 42 is not in the index; user 2 is new
    counts = {'3': 10.0, '5': 4.0}
    metrics = retrieval_evaluation.evaluate_popularity(TOKENS, SPEC, examples, counts, top_ks=(1, 2),
                                                       train_users={'1'})
    assert metrics['new_items_rows'] == 1 and metrics['new_items_recall_at_2'] == 0.0   # 0 clicks: ranked last
    assert metrics['new_users_rows'] == 1 and metrics['new_users_recall_at_1'] == 0.0   # item 5 is second
    assert metrics['new_users_recall_at_2'] == 1.0


def test_metrics_sliced_by_the_breadth_of_the_history():
    def shown(item, categories):
        example = tf.train.Example.FromString(_example(item))
        example.features.feature['hist_category'].int64_list.value.extend(categories)
        return example.SerializeToString()
    # Breadths 1, 1, 2, 3, 4, 4: terciles 1.67 and 3.33; item 3 is first by popularity, item 5 second.
    examples = [shown(3, [7]), shown(3, [7, 7]), shown(5, [1, 2]), shown(5, [1, 2, 3]), shown(5, [1, 2, 3, 4]),
                shown(3, [4, 3, 2, 1, 1])]
    metrics = retrieval_evaluation.evaluate_popularity(TOKENS, SPEC, examples, {'3': 10.0, '5': 4.0}, top_ks=(1,))
    assert metrics['interest_bounds'] == pytest.approx([5 / 3, 10 / 3])
    assert metrics['few_interests_rows'] == 2 and metrics['few_interests_recall_at_1'] == 1.0
    assert metrics['many_interests_rows'] == 2 and metrics['many_interests_recall_at_1'] == 0.5
    assert retrieval_evaluation.interest_column(SPEC) == 'hist_category'

"""The regression task: squared error against a label, or against another output without a gradient into it."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models.tasks import RegressionTask  # noqa: E402


def test_mean_squared_error_against_a_label():
    task = RegressionTask('y1', label='y1')
    loss = task.compute_loss({'y1': np.array([1.0, 2.0, -1.0])}, {'y1': np.array([0.5, 2.0, 1.0], np.float32)}, None)
    assert float(loss) == pytest.approx((0.25 + 0 + 4) / 3)
    task.update_metrics({}, {}, loss)
    assert [m.name for m in task.task_metrics] == ['y1_mse']


def test_a_target_from_the_outputs_gets_no_gradient():
    task = RegressionTask('bias', target='position_ctr', predictions='bias_prediction', served=False)
    target, prediction = tf.Variable([0.2, 0.1]), tf.Variable([0.0, 0.3])
    with tf.GradientTape() as tape:
        loss = task.compute_loss({}, {'position_ctr': target, 'bias_prediction': prediction}, None)
    target_gradient, prediction_gradient = tape.gradient(loss, [target, prediction])
    assert target_gradient is None
    np.testing.assert_allclose(prediction_gradient, [-0.2, 0.2], rtol=1e-5)
    with pytest.raises(ValueError, match='exactly one'):
        RegressionTask('x', label='a', target='b')

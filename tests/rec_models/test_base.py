"""The base class's design: a model is towers plus tasks. No model writes its own loss or metrics plumbing; the
base sums the tasks' weighted losses, names their metrics by head, and runs the model's declared update schedule,
each step with its own optimizer over its own variables."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from rec_models.base import RankingModel, UpdateStep  # noqa: E402
from rec_models.tasks import BinaryTask, RegressionTask  # noqa: E402
from toy_inputs import INPUTS, LABELS, _features, _small, every_model  # noqa: E402  pylint: disable=wrong-import-order

PLUMBING = ('compute_loss', 'total_loss', 'update_metrics', 'metrics', 'train_step', 'test_step')


@pytest.mark.parametrize('name', every_model())
def test_no_model_overrides_the_loss_or_the_metrics(name):
    cls = registry.get(name)[0]
    overriding = [method for method in PLUMBING for klass in cls.__mro__
                  if klass is not RankingModel and issubclass(klass, RankingModel) and method in vars(klass)]
    assert not overriding, overriding


class _TwoStep(RankingModel):
    """Two scalar towers: ``a`` trained on the click, ``b`` on a regression of ``a``'s logits, alternately."""

    def __init__(self, inputs, frequencies=None, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.a = tf.keras.layers.Dense(1, name='a')
        self.b = tf.keras.layers.Dense(1, name='b')
        self.set_tasks(BinaryTask(inputs.label, name='click'),
                       RegressionTask('echo', target='logits', predictions='echo', served=False, weight=0.5))

    def update_steps(self):
        return (UpdateStep('b', lambda m: m.b.trainable_variables, ('echo',)),
                UpdateStep('a', lambda m: m.a.trainable_variables, ('click',)))

    def call(self, features, training=False):
        x = tf.cast(features['purchase_power'], tf.float32)[:, tf.newaxis]
        logits = tf.squeeze(self.a(x), -1)
        return self.with_heads({'logits': logits, 'echo': tf.squeeze(self.b(x), -1)})


def test_each_update_step_moves_its_own_variables_with_its_own_optimizer():
    model = _TwoStep(INPUTS)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1))
    features = _features()
    labels = {label: features[label].astype(np.float32) for label in LABELS}
    model(features)
    assert model._step_optimizers['b'] is model.optimizer and model._step_optimizers['a'] is not model.optimizer
    a, b = model.a.kernel.numpy().copy(), model.b.kernel.numpy().copy()
    with tf.GradientTape() as tape:
        echo = model.task('echo').compute_loss(labels, model(features, training=True), features)
    expected_b = b - 0.1 * 0.5 * tape.gradient(echo, model.b.kernel).numpy()   # step b first, its task's weight 0.5
    logs = model.train_step((features, labels))
    np.testing.assert_allclose(model.b.kernel.numpy(), expected_b, rtol=1e-5)
    assert np.abs(model.a.kernel.numpy() - a).max() > 0
    assert set(logs) == {'loss', 'auc', 'echo_mse'}
    model.optimizer.learning_rate = 0.01     # a schedule sets the first step's optimizer; the others follow it
    model.train_step((features, labels))
    assert float(model._step_optimizers['a'].learning_rate) == pytest.approx(0.01)


def test_the_total_loss_is_the_weighted_sum_of_the_tasks_and_metrics_are_named_by_head():
    model = registry.build('esmm', INPUTS, {**_small('esmm'), 'ctr_weight': 0.3, 'ctcvr_weight': 2.0})
    features = _features()
    labels = {label: features[label].astype(np.float32) for label in LABELS}
    outputs = model(features, training=True)
    losses = model.task_losses(labels, outputs, features)
    assert set(losses) == {'ctr', 'ctcvr'}   # pCVR is tracked, not trained
    assert float(model.compute_loss(labels, outputs, features)) == pytest.approx(
        0.3 * float(losses['ctr']) + 2.0 * float(losses['ctcvr']), rel=1e-6)
    assert [m.name for m in model.metrics] == ['loss', 'regularization_loss', 'ctr_auc', 'ctr_loss', 'cvr_auc',
                                               'cvr_loss', 'ctcvr_auc', 'ctcvr_loss']
    assert model.primary_metric == 'ctr_auc' and registry.build('din', INPUTS, _small('din')).primary_metric == 'auc'
    with pytest.raises(ValueError, match='distinct names'):
        model.set_tasks(BinaryTask('click', name='x'), BinaryTask('cart', name='x'))

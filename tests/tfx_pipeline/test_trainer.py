"""The Trainer's training loop (tfx_pipeline/trainer.py): a non-finite loss stops training with the epoch and step
named, instead of a Trainer that reports success and an Evaluator that fails on NaN scores."""

import numpy as np
import pytest
import tensorflow as tf

from tfx_pipeline import trainer
from tfx_pipeline.config import TrainingConfig

pytestmark = pytest.mark.pipeline   # a Transform output


class _PoisonAtStep(tf.keras.callbacks.Callback):
    """Sets the model's first embedding table to NaN before the given step of the given epoch."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            variable = self.model.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, variable.dtype.as_numpy_dtype))


def test_a_non_finite_loss_stops_training_naming_the_epoch_and_step(prepared_tiny):
    prepared = prepared_tiny
    config = TrainingConfig(model='lr', epochs=3, batch_size=256, seed=0)
    with pytest.raises(FloatingPointError, match=r'at epoch 2, step 3: training stopped'):
        trainer.train(prepared.spec, prepared.tft_output, [prepared.transformed['train']],
                      [prepared.transformed['eval']], config, callbacks=[_PoisonAtStep(epoch=1, step=2)])

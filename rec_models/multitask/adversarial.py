"""The adversarial bias net (Moore, Pfeiffer, Wei, Iyer, Charles, Gilad-Bachrach, Boyles and Manavoglu, *Modeling
and Simultaneously Removing Bias via Adversarial Neural Networks*, arXiv 1804.06909, 2018; Microsoft).

Four nets and the position CTR b (the training data's click rate at the impression's position, counted by
Transform: :func:`feature_spec.resolve.position_rates`):

    Base X → Z_A,   Prediction Z_A → Z_Y,   Bias Z_A → b̂ (linear),   Bypass b → Z_BY
    ŷ = σ(W_Y · Z_Y + W_BY · Z_BY + c)

Each training batch takes two updates, declared as the model's update schedule
(:meth:`~rec_models.base.RankingModel.update_steps`), each with its own optimizer:

1. the Bias net alone on Loss_B = mean (b − b̂)² (the ``bias`` task, ``bias_mse``);
2. everything else, the Bias net frozen, on Loss_N = (1 − λ) · logloss(y, ŷ) + λ · Cov_B(b, b̂)²
   (the ``click`` and ``decorrelation`` tasks), with Cov_B the mini-batch covariance.

The Bias net learns to read the position back from Z_A; the Base net learns a Z_A from which it cannot, while the
Bypass carries the position's effect on the click apart from Z_A. Serving drops the Bias net and feeds the Bypass
b = the first position's CTR, so the served score is the click probability had the item been shown on top.

Choices: λ = ``adversarial_weight`` defaults to 0.5 (the paper sweeps it; its λ ≈ 1 puts almost no weight on the
log loss); Loss_B is a mean rather than the paper's sum (a constant factor for Adam).
"""

import tensorflow as tf

from feature_spec.model_inputs import POSITION, ModelInputs
from rec_models.base import UpdateStep
from rec_models.layers import MLP
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import LOGITS, BinaryTask, CovariancePenalty, RegressionTask

POSITION_CTR = 'position_ctr'
BIAS_PREDICTION = 'bias_prediction'


@register('adversarial_debiasing')
class AdversarialDebiasing(MultiTaskModel):
    """The adversarial bias net. ``call → {'logits', 'probabilities', 'position_ctr' (b), 'bias_prediction' (b̂, when
    the batch has positions)}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        base_units: the Base net's widths over the shared input (Z_A is the last).
        prediction_units: the Prediction net's widths (Z_Y is the last).
        bypass_units: the width of Z_BY.
        activation, dropout: of the Base and Prediction nets.
        adversarial_weight: λ.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, base_units=(200,), prediction_units=(80,),
                 bypass_units=8, activation='relu', dropout=0.2, adversarial_weight=0.5, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if not 0 <= adversarial_weight <= 1:
            raise ValueError(f'adversarial_weight must be in [0, 1], got {adversarial_weight}')
        self.hparams = {**self.bottom_hparams, 'base_units': tuple(base_units),
                        'prediction_units': tuple(prediction_units), 'bypass_units': bypass_units,
                        'activation': activation, 'dropout': dropout, 'adversarial_weight': adversarial_weight}
        self.position = self.training_input(POSITION, 'adversarial_debiasing')
        self.rates = tf.constant(self.position.label_rates, tf.float32)
        self.base_net = MLP(base_units, activation=activation, dropout=dropout, name='base_net')
        self.prediction_net = MLP(prediction_units, activation=activation, dropout=dropout, name='prediction_net')
        self.bias_net = tf.keras.layers.Dense(1, name='bias_net')
        self.bypass_net = tf.keras.layers.Dense(bypass_units, activation='relu', name='bypass_net')
        self.output_layer = tf.keras.layers.Dense(1, name='output')
        self.set_tasks(
            BinaryTask(inputs.label, weight=1.0 - adversarial_weight, auc_thresholds=self.auc_thresholds,
                       name='click'),
            RegressionTask('bias', target=POSITION_CTR, predictions=BIAS_PREDICTION, served=False, name='bias'),
            CovariancePenalty(POSITION_CTR, BIAS_PREDICTION, weight=adversarial_weight, name='decorrelation'))

    def update_steps(self):
        """The Bias net on its loss, then the rest with it frozen."""
        return (UpdateStep('bias', lambda model: model.bias_net.trainable_variables, ('bias',)),
                UpdateStep('main', lambda model: model.main_variables(), ('click', 'decorrelation')))

    def main_variables(self):
        """Every trainable variable but the Bias net's."""
        frozen = {id(v) for v in self.bias_net.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in frozen]

    def position_ctr(self, features, rows):
        """b ``[B]``: the CTR of each example's position, or of the first position when the batch has none."""
        if self.present(features, self.position):
            return tf.gather(self.rates, features[self.position.name])
        return tf.fill(tf.reshape(rows, [1]), self.rates[self.position.first_id])

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        representation = self.base_net(shared, training=training)                              # Z_A
        b = self.position_ctr(features, tf.shape(shared)[0])
        bypass = self.bypass_net(b[:, tf.newaxis])                                             # Z_BY
        prediction = self.prediction_net(representation, training=training)                   # Z_Y
        outputs[LOGITS] = tf.squeeze(self.output_layer(tf.concat([prediction, bypass], axis=-1)), axis=-1)
        outputs[POSITION_CTR] = b
        if self.present(features, self.position):
            outputs[BIAS_PREDICTION] = tf.squeeze(self.bias_net(representation), axis=-1)     # b̂
        return self.with_heads(outputs)

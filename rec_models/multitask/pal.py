"""PAL (Guo et al., *PAL: A Position-bias Aware Learning Framework for CTR Prediction in Live Recommender Systems*,
RecSys 2019).

    p(click | x, pos) = p(seen | pos) · p(click | x, seen)

Two modules trained jointly on the product: the loss is the log loss of the *product* against the click (a
:class:`~rec_models.tasks.ProductTask`), so neither module is supervised alone and both receive gradients. Serving
uses p(click | x, seen) only (``probabilities``); the position module's p(seen | pos) is the ``seen`` output when
the batch has positions.

Choice: the paper leaves open what the position module reads; here it reads the position alone (an embedding and a
linear layer): whatever else it read could carry relevance into the bias estimate.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import POSITION, ModelInputs
from rec_models.layers import FieldEmbedding
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import LOGITS, PROBABILITIES, ProductTask

SEEN = 'seen'


@register('pal')
class PAL(MultiTaskModel):
    """PAL. ``call → {'logits', 'probabilities' (p(click | x, seen)), and with positions 'seen', 'seen_logits'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        hidden_units, activation, dropout: the CTR module's MLP over the shared input.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu', dropout=0.2,
                 **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {**self.bottom_hparams, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout}
        self.position = self.training_input(POSITION, 'pal')
        self.ctr_module = self.tower(hidden_units, activation, dropout, 'ctr_module')
        self.position_embedding = FieldEmbedding(dataclasses.replace(
            inputs, fields=(dataclasses.replace(self.position, table=f'pal_{self.position.table}'),)),
            name='position_embedding')
        self.position_module = tf.keras.layers.Dense(1, name='position_module')
        self.set_tasks(ProductTask(inputs.label, (PROBABILITIES, SEEN), name='click',
                                   auc_thresholds=self.auc_thresholds))

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        outputs[LOGITS] = tf.squeeze(self.ctr_module(shared, training=training), axis=-1)
        outputs[PROBABILITIES] = tf.sigmoid(outputs[LOGITS])
        if self.present(features, self.position):
            embedded = self.position_embedding(features)[self.position.name]
            outputs[f'{SEEN}_logits'] = tf.squeeze(self.position_module(embedded), axis=-1)
            outputs[SEEN] = tf.sigmoid(outputs[f'{SEEN}_logits'])
        return outputs

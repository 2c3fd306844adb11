"""The two plain ways of handling the position that the debiasing models are measured against, on the family's
shared input (:mod:`rec_models.multitask.base`):

* ``position_blind``: the position is not an input; the click model learns relevance and examination mixed (an
  item often shown on top looks better than it is).
* ``position_feature``: the position is an ordinary input in training (its embedding beside the shared input) and is
  served as the first position, the usual production fix.
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import POSITION, ModelInputs
from rec_models.layers import FieldEmbedding
from rec_models.multitask.base import MultiTaskModel
from rec_models.registry import register
from rec_models.tasks import LOGITS


@register('position_feature', use_position=True)
@register('position_blind')
class PositionBaseline(MultiTaskModel):
    """A click model on the shared input. ``call → {'logits', 'probabilities'}``.

    Args:
        inputs, frequencies, bottom, l2, attention_units, bottom_activation: as :class:`MultiTaskModel`.
        hidden_units, activation, dropout: the MLP.
        use_position: read the position (the first position's id at serving).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu', dropout=0.2,
                 use_position=False, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {**self.bottom_hparams, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout, 'use_position': use_position}
        self.position = self.training_input(POSITION, 'position_feature') if use_position else None
        if self.position is not None:
            self.position_embedding = FieldEmbedding(dataclasses.replace(
                inputs, fields=(dataclasses.replace(self.position, table=f'feature_{self.position.table}'),)),
                name='position_embedding')
        self.mlp = self.tower(hidden_units, activation, dropout, 'mlp')

    def call(self, features, training=False):
        shared, outputs = self.bottom(features, training=training)
        if self.position is not None:
            if self.present(features, self.position):
                ids = features[self.position.name]
            else:
                ids = tf.fill(tf.shape(shared)[:1], tf.constant(self.position.first_id, tf.int64))
            position = self.position_embedding({self.position.name: ids})[self.position.name]
            shared = tf.concat([shared, position], axis=-1)
        outputs[LOGITS] = tf.squeeze(self.mlp(shared, training=training), axis=-1)
        return self.with_heads(outputs)

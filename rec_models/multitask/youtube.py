"""YouTube's multitask ranker (Zhao et al., *Recommending What Video to Watch Next: A Multitask Ranking System*,
RecSys 2019): MMoE over an engagement and a satisfaction objective, and a shallow tower that learns the selection
bias of the position.

    z_engagement = h_click(f^click(x)) + z_shallow(position, context)   in training
    p(click) = σ(z_engagement),   p(satisfaction) = σ(h_sat(f^sat(x)))

The shallow tower's logit is added before the sigmoid in training only; at serving (and in evaluation) the
position is unknown and the logit is dropped, so the served click head is the position-free relevance. In
training each example's position is dropped (set to the unknown id 0) with probability ``position_dropout``, so
that the model does not lean on it alone (the paper: "a 10% dropout rate on the position feature"; verify).

Choices: the shallow tower reads the position and the request context (the spec's ``context`` group: the paper's
device and other context features), each embedded, through one hidden layer; the experts' gates may drop experts
(``gate_dropout``, against the gate polarisation the paper reports).
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, CONTEXT, POSITION, ModelInputs
from rec_models.layers import FieldEmbedding
from rec_models.multitask.mmoe import MMoE
from rec_models.registry import register

SHALLOW_LOGITS = 'shallow_logits'


@register('youtube_ranker')
class YouTubeRanker(MMoE):
    """MMoE with the shallow position tower. ``call → MMoE's outputs, and 'shallow_logits' when the batch has
    positions (training)``.

    Args:
        inputs, frequencies, …: as :class:`~rec_models.multitask.mmoe.MMoE`.
        shallow_units: the width of the shallow tower's hidden layer.
        position_dropout: the probability of dropping an example's position in training.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, shallow_units=16, position_dropout=0.1,
                 gate_dropout=0.1, **kwargs):
        super().__init__(inputs, frequencies=frequencies, gate_dropout=gate_dropout, **kwargs)
        if not 0 <= position_dropout < 1:
            raise ValueError(f'position_dropout must be in [0, 1), got {position_dropout}')
        self.hparams.update(shallow_units=shallow_units, position_dropout=position_dropout)
        self.position = self.training_input(POSITION, 'youtube_ranker')
        context = tuple(f for f in inputs.in_group(CONTEXT) if f.kind == CATEGORICAL)
        self.shallow_embedding = FieldEmbedding(dataclasses.replace(
            inputs, fields=(dataclasses.replace(self.position, table=f'shallow_{self.position.table}'),) + tuple(
                dataclasses.replace(f, table=f'shallow_{f.table}') for f in context)), name='shallow_embedding')
        self.shallow_fields = (self.position.name,) + tuple(f.name for f in context)
        self.shallow = tf.keras.Sequential([tf.keras.layers.Dense(shallow_units, activation='relu'),
                                            tf.keras.layers.Dense(1)], name='shallow_tower')
        self.shallow.build((None, self.position.embedding_dim + sum(f.embedding_dim for f in context)))

    def call(self, features, training=False):
        outputs = self.tower_outputs(features, training)
        if training and self.present(features, self.position):
            position = features[self.position.name]
            dropped = tf.random.uniform(tf.shape(position)) < self.hparams['position_dropout']
            embedded = self.shallow_embedding({**features, self.position.name: tf.where(
                dropped, tf.zeros_like(position), position)})
            shallow = tf.squeeze(self.shallow(tf.concat([embedded[name] for name in self.shallow_fields], axis=-1)),
                                 axis=-1)
            engagement = f'{self.hparams["objectives"][0]}_logits'
            outputs[SHALLOW_LOGITS] = shallow
            outputs[engagement] = outputs[engagement] + shallow
        return self.with_heads(outputs)

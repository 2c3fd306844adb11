"""YouTube DNN's candidate generation (Covington et al., *Deep Neural Networks for YouTube Recommendations*,
RecSys 2016, §3).

    u = MLP_ReLU([mean of the watched items' embeddings, profile, context])
    P(w_t = i | U, C) = softmax_i(v_i · u + b_i)      over the item vocabulary, trained by sampled softmax

The output embeddings v_i (and biases b_i) are their own weights, as in the paper's softmax layer; serving is a
nearest-neighbour search of u among the v_i (the exported index; the biases are a training term only, as the
paper's dot-product search ignores them).

Choices: the history and the profile and context features the spec has stand for the paper's watch and search
history, geography, gender and age (there is no "example age" feature: the time-ordered split plays its part);
u is the MLP's linear output rather than its last ReLU (a ReLU-only u cannot take negative coordinates);
``num_sampled`` is capped at V − 2 for small vocabularies.
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.layers import MLP, FieldEmbedding
from rec_models.registry import register
from rec_models.retrieval.base import RetrievalModel
from rec_models.retrieval.towers import context_width, pooled_context
from rec_models.tasks.sampled_softmax import SampledSoftmaxTask, sampled_softmax_outputs


@register('youtube_dnn')
class YouTubeDNN(RetrievalModel):
    """Averaged history and profile → ReLU MLP → u; sampled softmax over the item output embeddings.

    Args:
        embedding_dim: d, the width of u and of the output embeddings.
        hidden_units: the ReLU layers (the paper's tower, 1024 → 512 → 256 at its scale).
        num_sampled: negatives a batch of the sampled softmax.
        dropout: dropout in the tower.
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=32, hidden_units=(256, 128),
                 num_sampled=1000, dropout=0.0, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        if num_sampled < 1:
            raise ValueError(f'num_sampled must be ≥ 1, got {num_sampled}')
        self.hparams.update(embedding_dim=embedding_dim, hidden_units=tuple(hidden_units), num_sampled=num_sampled,
                            dropout=dropout)
        self.embedding = FieldEmbedding(inputs, name='embedding')
        self.embedding.build(None)
        self.tower = MLP(hidden_units, dropout=dropout, output_units=embedding_dim, name='user_tower')
        self.tower.build((None, context_width(self.query_fields)))
        self.item_table = self.add_weight(name='item_output/embeddings', shape=(self.num_items, embedding_dim),
                                          initializer=tf.keras.initializers.TruncatedNormal(stddev=0.05))
        self.item_biases = self.add_weight(name='item_output/biases', shape=(self.num_items,), initializer='zeros')
        self.set_tasks(SampledSoftmaxTask(inputs.label, num_sampled=min(num_sampled, self.num_items - 2),
                                          num_classes=self.num_items, top_ks=self.hparams['top_ks']))

    def query_embedding(self, features, training=False):
        pooled = pooled_context(self.embedding, features, self.query_fields, self.model_inputs.sequence_length)
        return self.tower(pooled, training=training)

    def candidate_embedding(self, item_features, training=False):
        return tf.gather(self.item_table, item_features[self.item_id.name])

    def call(self, features, training=False):
        outputs = super().call(features, training=training)
        outputs.update(sampled_softmax_outputs(self.item_table, self.item_biases, features[self.item_id.name]))
        return outputs

"""Behavior Sequence Transformer (Chen et al., *Behavior Sequence Transformer for E-commerce Recommendation in
Alibaba*, DLP-KDD 2019).

* Embedding layer (§3.1): each behaviour is x_j = [e_j, s_j], its item-side embeddings (item, category, brand:
  the keys of :class:`~rec_models.sequence.behavior.BehaviorModel`) and its side information, whose time-gap bucket
  embedding is BST's positional feature pos(v_j) = t(v_t) − t(v_j) (the paper's choice over sinusoids) and which
  also carries the behaviour type. The target item is one more step, x_A = [v_A, p_A], with p_A a learned vector of
  the side width (the target's time gap is 0 and it has no behaviour type).
* Transformer layer (§3.2, eq. 1–5): ``blocks`` stacked :class:`~rec_models.layers.TransformerBlock` s (multi-head
  self-attention, LeakyReLU feed-forward, residuals, LayerNorm, dropout) over [x_A, behaviours], padded steps
  masked out; the paper found one block best.
* MLP layers (§3.3): the transformer's outputs at every step, concatenated, with the other features' embeddings
  (user profile, target item, context) through a LeakyReLU MLP to the click logit.

Choices: the sequence is the ``max_steps`` (20, the paper's length) newest behaviours, ordered target first, then
the behaviours newest first (the valid steps reversed, padding kept at the end), so that each slot of the
concatenation is the same recency for every user whatever the history's length; padded steps give zeros and change
no output. The MLP is DIN's 200-80 tower, not the paper's 1024-512-256 one, which was sized for Taobao's data:
chosen by measurement on the ``tiny`` synthetic set at the pipeline test's schedule (batch 64, learning rate 0.01,
2 epochs), where the paper's tower, and 200-80 over all 50 behaviours, did worse than 200-80 over the 20 newest
(README, "Models").

Regularisation (the paper gives none but the transformer's dropout): the MLP reads every step's output in its own
slot, so it can memorise (slot, item) pairs, and with the sequence models' usual λ = 1 and dropout 0.2 BST overfit
after three epochs. The defaults, λ = 4 with dropout 0.5 after each hidden layer, were chosen by measurement on the
default synthetic data set against λ = 1 with dropout 0.2, λ = 4 alone, λ = 4 with transformer dropout 0.3 and the
DMR-style batch normalisation of the MLP input (README, "The behaviour-sequence family").
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.base import click_outputs
from rec_models.sequence.behavior import BehaviorModel
from rec_models.layers import MLP, TransformerBlock
from rec_models.registry import register


@register('bst')
class BST(BehaviorModel):
    """BST. ``call(features, training=False) → {'logits', 'probabilities', 'attention_maps'}``
    (``attention_maps``: the last block's ``[B, heads, S + 1, S + 1]``, step 0 the target).

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        blocks: stacked transformer blocks.
        heads: attention heads of each block.
        head_dim: width of each head.
        transformer_dropout: dropout inside the transformer blocks.
        hidden_units: widths of the MLP's hidden layers.
        activation: the MLP's activation (LeakyReLU in the paper).
        dropout: dropout rate after each hidden layer of the MLP (0.5: see "Regularisation" above).
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off; 4: see "Regularisation" above).
        max_steps: S, the newest behaviours the transformer reads.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, blocks=1, heads=8, head_dim=8,
                 transformer_dropout=0.1, hidden_units=(200, 80), activation='leaky_relu', dropout=0.5,
                 l2=4.0, max_steps=20, **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        self.hparams = {'blocks': blocks, 'heads': heads, 'head_dim': head_dim,
                        'transformer_dropout': transformer_dropout, 'hidden_units': tuple(hidden_units),
                        'activation': activation, 'dropout': dropout, 'l2': l2, 'max_steps': max_steps}
        self.steps = min(max_steps, self.keyed[0].max_length)
        self.side_dim = sum(f.embedding_dim for f in self.side)
        self.transformer = [TransformerBlock(heads, head_dim, dropout=transformer_dropout, name=f'transformer_{i}')
                            for i in range(blocks)]
        self.mlp = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='mlp')
        self.target_side = self.add_weight(name='target_side', shape=(self.side_dim,), initializer='zeros') \
            if self.side_dim else None

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        sequence, mask = self.input_sequence(features, embeddings)
        for block in self.transformer:
            sequence, attention = block(sequence, mask, training=training)
        flat = tf.reshape(sequence, [-1, sequence.shape[1] * sequence.shape[2]])
        logits = tf.squeeze(self.mlp(self.mlp_input(features, embeddings, flat), training=training), axis=-1)
        return click_outputs(logits, attention_maps=attention)

    def input_sequence(self, features, embeddings):
        """The transformer's input ``[B, S + 1, d]``: x_A, then the S newest behaviours newest first, then padding;
        and its mask ``[B, S + 1]``."""
        lengths = tf.cast(features[self.model_inputs.sequence_length], tf.int32)
        keys, query, side = self.behaviours(embeddings)
        steps = self.with_side(keys, side)
        target = query if side is None else tf.concat(
            [query, tf.broadcast_to(self.target_side, [tf.shape(query)[0], self.side_dim])], axis=-1)
        newest_first = tf.reverse_sequence(steps, lengths, seq_axis=1, batch_axis=0)[:, :self.steps]
        mask = tf.concat([tf.ones_like(lengths[:, tf.newaxis], tf.bool),
                          tf.sequence_mask(tf.minimum(lengths, self.steps), self.steps)], axis=1)
        return tf.concat([target[:, tf.newaxis, :], newest_first], axis=1), mask

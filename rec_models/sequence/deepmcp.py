"""DeepMCP (Ouyang et al., *Representation Learning-Assisted Click-Through Rate Prediction*, IJCAI 2019): a
prediction subnet trained jointly with a matching and a correlation subnet over one shared embedding.

* Prediction subnet: ŷ = σ(DNN([user features, ad features, other features])), L_p the log loss — the only part
  that is served.
* Matching subnet: a user tower and an ad tower, each an MLP whose last layer is tanh (ReLU would zero many
  coordinates and push the inner products to 0), v_u and v_a; s = σ(v_uᵀ v_a) and L_m the log loss of s against the
  click.
* Correlation subnet: skip-gram over the user's clicked-ad sequence with negative sampling,

      L_c = −1/L Σ_i Σ_{−C ≤ j ≤ C, j ≠ 0} [log σ(h_{a_{i+j}}ᵀ h_{a_i}) + Σ_{q=1}^{Q} log σ(−h_{a_q}ᵀ h_{a_i})]

  with h_a the ad's embeddings in the shared tables.
* Joint loss L = L_p + α L_m + β L_c (``match_weight`` α, ``correlation_weight`` β).

Choices: the ads are the items, h_a their item-side embeddings (item, category, brand: the keys of
:class:`~rec_models.sequence.behavior.BehaviorModel`) and the clicked-ad sequence the behaviour history. The user
features are the profile and the behaviours sum-pooled (this data describes a user by its behaviours; the prediction subnet is
then the base model's network), the "other" features the context; the user tower reads user and context features
(the paper's user and query), the ad tower the item features. The Q negatives of a pair (a_i, ·) are the step-i
behaviours of Q other examples of the mini-batch (the batch rolled by 1 … Q rows), dropped when padding or the same
item; L_c is normalised by the number of positive pairs. The three losses are three tasks: the click task (L_p), an
:class:`~rec_models.tasks.BinaryTask` on the matching logits (L_m, head ``match``, not served: ``match_auc`` and
``match_loss`` in training) and an :class:`~rec_models.tasks.AuxiliaryLoss` (L_c, ``aux_loss``).
"""

import tensorflow as tf

from feature_spec.model_inputs import CONTEXT, ITEM, SEQUENCE, USER, ModelInputs
from rec_models.base import click_outputs
from rec_models.layers import MLP, MaskedSumPooling
from rec_models.registry import register
from rec_models.sequence.behavior import AUX_LOSS, BehaviorModel
from rec_models.tasks import BinaryTask, logits_key

MATCH = 'match'
MATCH_LOGITS = logits_key(MATCH)


@register('deepmcp')
class DeepMCP(BehaviorModel):
    """DeepMCP. ``call(features, training=False) → {'logits', 'probabilities'}``, plus in training the matching
    logits v_uᵀ v_a (``'match_logits'``) and L_c (``'aux_loss'``).

    Args:
        inputs: the model inputs; needs sequences with a ``query`` and a ``sequence_length``.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        hidden_units: widths of the prediction subnet's hidden layers.
        activation: the prediction subnet's activation.
        dropout: dropout rate after each hidden layer of the prediction subnet.
        l2: λ of the mini-batch-aware L2 on the embeddings (0: off).
        tower_units: widths of each matching tower; the last is the width of v_u and v_a (tanh).
        window: C, the skip-gram context window.
        negatives: Q, negatives per skip-gram pair.
        match_weight: α.
        correlation_weight: β.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, hidden_units=(200, 80), activation='relu',
                 dropout=0.2, l2=1.0, tower_units=(64, 32), window=2, negatives=2, match_weight=0.5,
                 correlation_weight=0.5, **kwargs):
        super().__init__(inputs, frequencies=frequencies, l2=l2, **kwargs)
        if match_weight < 0 or window < 1 or negatives < 1:
            raise ValueError(f'match_weight must be ≥ 0 and window, negatives ≥ 1; got {match_weight}, {window}, '
                             f'{negatives}')
        self.use_auxiliary_loss(correlation_weight, BinaryTask(
            inputs.label, head=MATCH, weight=match_weight, served=False, auc_thresholds=self.auc_thresholds))
        self.hparams = {'hidden_units': tuple(hidden_units), 'activation': activation, 'dropout': dropout,
                        'l2': l2, 'tower_units': tuple(tower_units), 'window': window, 'negatives': negatives,
                        'match_weight': match_weight, 'correlation_weight': correlation_weight}
        self.pooling = MaskedSumPooling(name='sum_pooling')
        self.prediction = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='prediction')
        pooled_width = self.key_dim + sum(f.embedding_dim for f in self.side)
        self.user_tower = self._tower(tower_units, self._width((USER, CONTEXT)) + pooled_width, 'user_tower')
        self.ad_tower = self._tower(tower_units, self._width((ITEM,)), 'ad_tower')

    @staticmethod
    def _tower(units, width, name):
        """A matching tower over ``width`` inputs, built now (it runs in training only)."""
        tower = tf.keras.Sequential([tf.keras.layers.Dense(u, activation='relu') for u in units[:-1]] +
                                    [tf.keras.layers.Dense(units[-1], activation='tanh')], name=name)
        tower.build((None, width))
        return tower

    def _width(self, groups):
        """The width of :meth:`group_parts` of ``groups`` concatenated."""
        return sum(f.embedding_dim if f.table else 1 for group in groups for f in self.model_inputs.in_group(group)
                   if f.kind != SEQUENCE)

    def call(self, features, training=False):
        embeddings = self.embedding(features, training=training)
        mask = self.sequence_mask(features, self.keyed[0])
        keys, _, side = self.behaviours(embeddings)
        pooled = self.pooling(self.with_side(keys, side), mask=mask)
        logits = tf.squeeze(self.prediction(self.mlp_input(features, embeddings, pooled), training=training), -1)
        outputs = click_outputs(logits)
        if training:
            user_parts = self.group_parts(features, embeddings, USER) + self.group_parts(features, embeddings, CONTEXT)
            user = self.user_tower(tf.concat(user_parts + [pooled], axis=-1))
            ad = self.ad_tower(tf.concat(self.group_parts(features, embeddings, ITEM), axis=-1))
            outputs[MATCH_LOGITS] = tf.reduce_sum(user * ad, axis=-1)                   # v_uᵀ v_a
            if self.aux_weight:
                outputs[AUX_LOSS] = self.correlation_loss(keys, mask, features[self.keyed[0].name])
        return outputs

    def correlation_loss(self, ads, mask, item_ids):
        """L_c over the clicked-ad sequence ``ads`` ``[B, L, d]`` (skip-gram with in-batch negatives)."""
        valid = tf.cast(mask, tf.float32)
        total, pairs = 0.0, 0.0
        for offset in [o for o in range(-self.hparams['window'], self.hparams['window'] + 1) if o]:
            context = tf.roll(ads, shift=-offset, axis=1)                                  # a_{i+j} at step i
            in_range = tf.cast(tf.logical_and(tf.range(ads.shape[1]) + offset >= 0,
                                              tf.range(ads.shape[1]) + offset < ads.shape[1]), tf.float32)
            pair = valid * tf.roll(valid, shift=-offset, axis=1) * in_range                # both steps valid
            total += tf.reduce_sum(pair * tf.nn.softplus(-tf.reduce_sum(ads * context, axis=-1)))
            for shift in range(1, self.hparams['negatives'] + 1):
                negative = tf.roll(ads, shift=shift, axis=0)                               # a_q: another user's
                usable = pair * tf.roll(valid, shift=shift, axis=0) * tf.cast(
                    tf.not_equal(tf.roll(item_ids, shift=shift, axis=0), item_ids), tf.float32)
                total += tf.reduce_sum(usable * tf.nn.softplus(tf.reduce_sum(ads * negative, axis=-1)))
            pairs += tf.reduce_sum(pair)
        return total / tf.maximum(pairs, 1.0)

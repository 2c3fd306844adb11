"""BERT4Rec (Sun et al., *BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
Transformer*, CIKM 2019).

A bidirectional transformer trained on the Cloze task: items of the sequence are replaced by a [mask] token and
predicted from both sides; the next item is predicted at a [mask] appended to the history.

    h⁰_j = LN(v_j + p_j)  (dropout),   v_j = E_{i_j}, or the [mask] embedding m at a masked step     (§3.4)
    H^l = Trm(H^{l−1}),  Trm(H) = LN(A + Dropout(PFFN(A))),  A = LN(H + Dropout(MH(H)))           (§3.3, eq. 1–4)
        PFFN(x) = GELU(x W¹ + b¹) W² + b²  (W¹: d × 4d);  MH: h heads, every valid step attends to every other
    P(v | h_t) = softmax(GELU(h_t W^P + b^P) Eᵀ + b^O)                                             (§3.5, eq. 7)

E is the item table of the input (tied), b^O one bias an item. The released code (``run.py``,
``get_masked_lm_output``) puts a LayerNorm after the GELU projection, as BERT's ``cls/predictions/transform`` does:
followed here. The mask embedding m is its own weight (Choice: the item table stays the spec's vocabulary, V rows;
the code adds [mask] to its vocabulary, which gives it an output row and a bias that no target ever has).

**Query and candidates.** Inference (§3.6) appends [mask] to the history and reads the output at it: the window is
i_0 … i_{n−1}, [mask] (n + 1 ≤ L steps; a full history of L items drops its oldest, i_0), and

    u = [LN(GELU(h_{[mask]} W^P + b^P)), 1],     v_i = [E_i, b^O_i]      so that  ⟨u, v_i⟩ = the logit of eq. 7

(Choice: the bias rides along as the last coordinate, so the exported index and the nearest-neighbour search rank
exactly by the paper's softmax.)

**Training.** Choice: each row's target y is appended to its history, as the [mask] of inference is, and always
masked; of the window's history items, round(ρ · count) (ρ = ``mask_proportion``) are masked at random as well, and
every masked step predicts its item. The window and positions of the target's step are thus those of inference.
This follows the released data generator (``gen_data_fin.py``): ``create_masked_lm_predictions`` masks
max(1, round(ρ · length)) random items of a sequence with [mask] (``mask_prob`` = 1.0: always [mask], never BERT's
random or unchanged item), and ``mask_last`` adds one sample a sequence with only its last item masked (the paper's
§3.6: "samples that only mask the last item … like fine-tuning"); here every row carries both, the target masked
and ρ of its history. The importers' rows are the prefixes of each user's sequence (leave-one-out), which plays the
part of the code's ``dupe_factor`` (10 copies with other masks) and sliding windows: an item is masked in some of
the rows whose window holds it. ``max_predictions_per_seq`` (the code's cap, ρ·L in its scripts) is not applied.
In evaluation only the target is masked: the input is the inference query's, and the validation loss is its
cross-entropy at the target.

**Loss** at the masked steps (``loss``): ``softmax``, the paper's full softmax over the item table, refused beyond
:data:`~rec_models.retrieval.sequence_encoder.FULL_SOFTMAX_MAX_ITEMS` items (its logits are B · (ρL + 1) × V a
batch), or ``sampled_softmax`` (default: scales to any V; its cost is B · (ρL + 1) × N), both from
:mod:`~rec_models.retrieval.sequence_encoder`. Choice: the sampled softmax is the default because the vocabularies
here go to 1M items, where the paper's softmax cannot be trained (Petrov & Macdonald, RecSys 2023, on the 1M-item
Gowalla).

Choices beyond those: positions are numbered from the oldest step of the window, as the released code numbers them
(the appended [mask] is at p_n, or p_{L−1} for a full window); the attention has no dropout on its weights (the
code's ``attention_probs_dropout_prob``); weights start from BERT's truncated normal (σ = 0.02). Defaults are the
released ML-1m configuration: d = 64, 2 blocks, 2 heads, dropout 0.2 (0.5 for Beauty), ρ = 0.2 (0.6 for Beauty).
"""

import tensorflow as tf

from feature_spec.model_inputs import ModelInputs
from rec_models.registry import register
from rec_models.retrieval.sequence_encoder import (SAMPLED_SOFTMAX, SOFTMAX, SequenceEncoder, SequenceRetrievalModel,
                                                   gather_steps, newest_window)

INITIALIZER_STDDEV = 0.02


def _initializer():
    """BERT's truncated normal, a new instance a weight (one unseeded instance would give its weights one draw)."""
    return tf.keras.initializers.TruncatedNormal(stddev=INITIALIZER_STDDEV)


@register('bert4rec')
class BERT4Rec(SequenceRetrievalModel):
    """Bidirectional transformer with Cloze training; u = the output at an appended [mask] (module docstring).

    Args:
        embedding_dim: d (64).
        blocks: L of the paper, transformer layers (2).
        heads: h (2).
        dropout: the hidden dropout (0.2 for ML-1m, 0.5 for Beauty in the released configurations).
        loss: ``sampled_softmax`` (default) or ``softmax`` (the paper's).
        num_negatives: N of ``sampled_softmax``.
        mask_proportion: ρ, the share of the history items masked in training (0.2 for ML-1m; 0.6 for Beauty).
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    LOSSES = (SAMPLED_SOFTMAX, SOFTMAX)

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=64, blocks=2, heads=2, dropout=0.2,
                 loss=SAMPLED_SOFTMAX, num_negatives=1000, mask_proportion=0.2, **kwargs):
        super().__init__(inputs, frequencies=frequencies, embedding_dim=embedding_dim, blocks=blocks, heads=heads,
                         dropout=dropout, loss=loss, num_negatives=num_negatives, **kwargs)
        self.hparams.update(mask_proportion=mask_proportion)
        self.check_hparams(self.hparams)
        self.item_embedding = self.add_weight(name='item_embedding/embeddings', shape=(self.num_items, embedding_dim),
                                              initializer=_initializer())
        self.item_bias = self.add_weight(name='item_output/biases', shape=(self.num_items,), initializer='zeros')
        self.mask_embedding = self.add_weight(name='mask_embedding', shape=(embedding_dim,), initializer=_initializer())
        self.encoder = SequenceEncoder(self.max_length, blocks=blocks, heads=heads, dropout=dropout, causal=False,
                                       pre_norm=False, activation='gelu', ffn_units=4 * embedding_dim,
                                       position_initializer=_initializer(), name='encoder')
        self.transform = tf.keras.layers.Dense(embedding_dim, kernel_initializer=_initializer(),
                                               name='output_transform')
        self.transform_norm = tf.keras.layers.LayerNormalization(epsilon=1e-12, name='output_transform_norm')

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        if not 0 <= hparams.get('mask_proportion', 0.2) <= 1:
            raise ValueError(f'mask_proportion must be in [0, 1], got {hparams["mask_proportion"]}')

    def candidate_embedding(self, item_features, training=False):
        ids = item_features[self.item_id.name]
        return tf.concat([tf.gather(self.item_embedding, ids), tf.gather(self.item_bias, ids)[..., tf.newaxis]],
                         axis=-1)

    def output_head(self, states):
        """``[…, d + 1]``: [LN(GELU(h W^P + b^P)), 1], whose product with [E_i, b^O_i] is eq. 7's logit."""
        projected = self.transform_norm(tf.nn.gelu(self.transform(states), approximate=False))
        return tf.concat([projected, tf.ones_like(projected[..., :1])], axis=-1)

    def cloze_mask(self, history_lengths):
        """``[B, L]`` bool: round(ρ · h) of the first h steps of each row (``history_lengths [B]``), at random."""
        history_lengths = tf.cast(history_lengths, tf.int32)
        proportion = tf.constant(self.hparams['mask_proportion'], tf.float32)
        count = tf.cast(tf.floor(proportion * tf.cast(history_lengths, tf.float32) + 0.5), tf.int32)
        steps = tf.range(self.max_length)[tf.newaxis, :]
        scores = tf.random.uniform(tf.stack([tf.shape(history_lengths)[0], self.max_length]))
        scores = tf.where(steps < history_lengths[:, tf.newaxis], scores, 2.0)    # padding and the target: last
        ranks = tf.argsort(tf.argsort(scores, axis=1, stable=True), axis=1, stable=True)
        return ranks < count[:, tf.newaxis]

    def encode(self, features, training=False):
        """``query [B, d + 1]`` (at the target's [mask]), ``outputs [B, L, d + 1]``, ``window [B, L]`` (the item ids
        of the window: history, then the target), ``lengths``, ``masked`` and ``cloze`` (``[B, L]`` bool: the masked
        steps, and those of them in the history)."""
        ids, lengths = self.item_history(features)
        steps = tf.range(self.max_length + 1)[tf.newaxis, :]
        appended = tf.concat([ids, tf.zeros_like(ids[:, :1])], axis=1)
        appended = tf.where(steps == lengths[:, tf.newaxis], self.target_ids(features)[:, tf.newaxis], appended)
        window, window_lengths = newest_window(appended, lengths + 1, self.max_length)
        target_step = tf.range(self.max_length)[tf.newaxis, :] == (window_lengths - 1)[:, tf.newaxis]
        cloze = self.cloze_mask(window_lengths - 1) if training else tf.zeros_like(target_step)
        masked = tf.logical_or(cloze, target_step)
        vectors = tf.where(masked[..., tf.newaxis], self.mask_embedding, tf.gather(self.item_embedding, window))
        outputs = self.output_head(self.encoder(vectors, window_lengths, training=training))
        return {'query': gather_steps(outputs, window_lengths - 1), 'outputs': outputs, 'window': window,
                'lengths': window_lengths, 'masked': masked, 'cloze': cloze}

    def sequence_loss(self, features, encoding, training=False):
        outputs, masked = encoding['outputs'], encoding['masked']
        weights = tf.cast(masked, tf.float32) * self.row_weights(features)[:, tf.newaxis]
        return self.softmax_loss(tf.reshape(outputs, [-1, tf.shape(outputs)[-1]]), tf.reshape(encoding['window'], [-1]),
                                 tf.reshape(weights, [-1]))

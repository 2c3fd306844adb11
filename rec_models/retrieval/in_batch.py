"""In-batch negatives with the sampling-bias correction (Yi et al., *Sampling-Bias-Corrected Neural Modeling for
Large Corpus Item Recommendations*, RecSys 2019), and mixed negatives (Yang et al., *Mixed Negative Sampling for
Learning Two-tower Neural Networks in Recommendations*, WWW 2020).

The candidates of a batch are its rows' positives, drawn from the click distribution p, plus ``uniform_negatives``
items drawn uniformly from the n indexed items. Each candidate's logit is corrected by −log of its expected number
of draws in the batch,

    log q_j = log(E[count_j]) = log(p̂_j + n_u / n)

with p̂_j the expected number of the batch's positives equal to item j (``logq``): ``streaming``, the streaming
frequency estimate of the paper (:class:`~rec_models.layers.StreamingFrequencyEstimator`, updated in each training
step from the batch's positive ids, before the forward pass; Choice: with its bias correction, without which a
training of a few hundred steps leaves every estimate near 1, i.e. uncorrected); ``static``, |B⁺| · c_j / Σ c
from the training
positives' counts c (what TensorFlow Recommenders and DeepMatch do); ``none``, no correction (the plain in-batch
softmax). Choice: with uniform negatives the two proposals are mixed into one expected count, the correction of
sampled softmax for a mixture proposal; Yang et al. do not say how they correct.
"""

import tensorflow as tf

from rec_models.layers.frequency_estimation import StreamingFrequencyEstimator
from rec_models.retrieval.base import LOGQ_MODES, RetrievalModel
from rec_models.tasks.sampled_softmax import SampledSoftmaxTask, sampled_softmax_outputs


class InBatchRetrieval(RetrievalModel):
    """A retrieval model trained with the in-batch softmax (the base's default task) and the correction above.

    Args:
        logq: ``streaming``, ``static`` or ``none``.
        uniform_negatives: n_u, extra negatives a batch drawn uniformly from the indexed items (0: in-batch only).
        frequency_buckets, frequency_hashes, frequency_learning_rate: H, m and α of the streaming estimate.
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    def __init__(self, inputs, frequencies=None, logq='streaming', uniform_negatives=0, frequency_buckets=1 << 18,
                 frequency_hashes=2, frequency_learning_rate=0.01, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams.update(logq=logq, uniform_negatives=uniform_negatives, frequency_buckets=frequency_buckets,
                            frequency_hashes=frequency_hashes, frequency_learning_rate=frequency_learning_rate)
        InBatchRetrieval.check_hparams(self.hparams)   # the subclass checks its own once it has set them
        self.estimator = (StreamingFrequencyEstimator(frequency_buckets, num_hashes=frequency_hashes,
                                                      learning_rate=frequency_learning_rate, bias_correction=True,
                                                      name='frequency')
                          if logq == 'streaming' else None)

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        if hparams.get('logq', 'streaming') not in LOGQ_MODES:
            raise ValueError(f'logq must be one of {LOGQ_MODES}, got {hparams["logq"]!r}')
        if hparams.get('uniform_negatives', 0) < 0:
            raise ValueError(f'uniform_negatives must be ≥ 0, got {hparams["uniform_negatives"]}')

    def positive_ids(self, features, labels):
        """The item ids of the batch's positive rows."""
        ids = tf.reshape(tf.cast(features[self.item_id.name], tf.int64), [-1])
        label = labels.get(self.model_inputs.label)
        return ids if label is None else tf.boolean_mask(ids, tf.cast(tf.reshape(label, [-1]), tf.float32) > 0.5)

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        if self.estimator is not None:
            features, labels = self.split_data(data)
            self.estimator.update(self.positive_ids(features, labels))
        return super().train_step(data)

    def expected_in_batch(self, ids, positives):
        """p̂_j: the expected number of the batch's ``positives`` rows whose item is ``ids`` (see the module)."""
        if self.estimator is not None:
            return self.estimator(ids)
        counts = self.catalogue_counts
        return positives * tf.gather(counts, ids) / tf.maximum(tf.reduce_sum(counts), 1.0)

    def extra_candidates(self, features, candidates, candidate_ids, training):
        if not training:
            return candidates, candidate_ids, None
        extra = self.hparams['uniform_negatives']
        if extra:
            sampled = tf.random.uniform([extra], 1, self.index_size + 1, dtype=tf.int64)
            negatives = self.candidate_embedding(self.catalogue_features(sampled), training=training)
            candidates = tf.concat([candidates, negatives], axis=0)
            candidate_ids = tf.concat([candidate_ids, sampled], axis=0)
        if self.hparams['logq'] == 'none':
            return candidates, candidate_ids, None
        label = features.get(self.model_inputs.label)
        positives = (tf.cast(tf.size(candidate_ids) - extra, tf.float32) if label is None else
                     tf.reduce_sum(tf.cast(tf.cast(tf.reshape(label, [-1]), tf.float32) > 0.5, tf.float32)))
        expected = self.expected_in_batch(candidate_ids, positives)
        expected += extra / tf.cast(self.index_size, tf.float32)
        return candidates, candidate_ids, tf.math.log(tf.maximum(expected, 1e-12))


NEGATIVES = ('sampled', 'in_batch')


class SampledOrInBatch(InBatchRetrieval):
    """A model trained either by the sampled softmax over its output table (``negatives='sampled'``:
    :class:`~rec_models.tasks.sampled_softmax.SampledSoftmaxTask`, which the subclass declares) or by the in-batch
    softmax above (``'in_batch'``). Subclasses give the table (:meth:`output_table`)."""

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        negatives = hparams.get('negatives', 'sampled')
        if negatives not in NEGATIVES:
            raise ValueError(f'negatives must be one of {NEGATIVES}, got {negatives!r}')
        if negatives == 'sampled' and hparams.get('uniform_negatives', 0):
            raise ValueError('uniform_negatives is for negatives="in_batch"; the sampled softmax draws its own '
                             f'(num_sampled), got uniform_negatives={hparams["uniform_negatives"]}')

    @property
    def sampled(self) -> bool:
        return self.hparams.get('negatives', 'sampled') == 'sampled'

    def output_table(self, training=False):
        """``(embeddings [V, d], biases [V])`` of the sampled softmax's classes, every id of the item table."""
        raise NotImplementedError

    def use_sampled_softmax(self, num_sampled: int) -> None:
        """Declares the sampled-softmax task (``num_sampled`` negatives a batch, at most V − 2) when
        ``negatives='sampled'``; the in-batch task of the base stays otherwise."""
        if self.sampled:
            self.set_tasks(SampledSoftmaxTask(self.model_inputs.label, num_sampled=min(num_sampled, self.num_items - 2),
                                              num_classes=self.num_items, top_ks=self.hparams['top_ks']))

    def extra_candidates(self, features, candidates, candidate_ids, training):
        if self.sampled:
            return candidates, candidate_ids, None
        return super().extra_candidates(features, candidates, candidate_ids, training)

    def call(self, features, training=False):
        outputs = super().call(features, training=training)
        if self.sampled:
            outputs.update(sampled_softmax_outputs(*self.output_table(training), features[self.item_id.name]))
        return outputs

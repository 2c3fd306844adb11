"""MIND: the Multi-Interest Network with Dynamic routing (Li et al., *Multi-Interest Network with Dynamic Routing
for Recommendation at Tmall*, CIKM 2019, arXiv:1904.08030).

A user is K vectors V_u = (v_u^1 … v_u^K) ∈ R^{K×d}, an item one vector e_i ∈ R^d (§3):

    e_i   = mean(E_id[i], E_cate[cate_i], …)             Embedding & Pooling layer (§4.1): an item's id features
                                                        embedded and averaged; history steps and candidates alike
    (u_1 … u_K), K'_u = B2I(e_1 … e_L)                  B2I dynamic routing over the behaviours (§4.2, Alg. 1),
                                                        K'_u = max(1, min(K, log₂ |I_u|)) (eq. 9)
    v_u^k = H([u_k, p_u])                                each capsule concatenated with the profile embedding p_u and
                                                        passed through ReLU layers H (§4.2, Fig. 2)
    f_score(V_u, e_i) = max_k e_iᵀ v_u^k                 serving (§3, §4.4): the best valid interest
    v_u = V_u · softmax(pow(V_uᵀ e_i, p))                label-aware attention (§4.3), training only
    Pr(i | u) = exp(v_uᵀ e_i) / Σ_j exp(v_uᵀ e_j)        trained by sampled softmax (§4.4)

The routing, K'_u and the label-aware attention are :mod:`rec_models.layers.capsule`'s (read its docstring for
their own choices: the routing-logit draw, deterministic inference, softmax(p·s) standing for softmax(pow(s, p))).

Choices:

* Choice (embedding widths): every table is d wide (``embedding_dim``), so that an item's id-feature embeddings
  can be averaged (the paper's pooling) and the profile is one d-wide embedding a field.
* Choice (item features): e_i averages the item group's categorical fields (id, category, brand …); a history
  step averages the behaviour sequences whose ``query`` is one of them (``hist_item_id`` → ``item_id``,
  ``hist_category`` → ``category``). Sequences without a query (time gaps, behaviour types) have no item
  counterpart and are left out, as are numeric item features (the paper's item features are id features).
  A candidate side field without a history counterpart still enters e_i.
* Choice (profile): p_u is the concatenated embeddings of the user *and* context groups' fields (numeric values as
  one column each); the paper's P_u is the profile (gender, age, …) and it has no request context.
* Choice (H): ``hidden_units`` ReLU layers, then a d-wide output layer, ReLU by default (``relu_output``): Fig. 2
  draws H as ReLU layers throughout. ``relu_output=False`` makes the last layer linear (v_u^k may then take
  negative coordinates, as YouTube DNN's u does here). H is shared by the K capsules.
* Choice (training loss, ``negatives``): ``sampled`` (default) is the paper's sampled softmax
  (:class:`~rec_models.tasks.sampled_softmax.SampledSoftmaxTask`: a log-uniform proposal, −log Q corrected,
  accidental hits removed), over the candidate embeddings e_j of the whole item table, recomputed every step from
  the catalogue: V × (item fields) gathers and a [V, d] matrix per step, affordable for V ≈ 10⁴–10⁵ but not for
  millions of items. ``in_batch`` is :class:`~rec_models.retrieval.in_batch.InBatchRetrieval`'s in-batch softmax
  with the logQ correction (``logq``, optional ``uniform_negatives``): it embeds only the batch's items and scales
  to any catalogue. Both use the label-aware v_u as the query. ``temperature`` (τ of the in-batch softmax) defaults
  to 1 here (the paper's softmax has none; MIND's vectors are not normalised); the ``sampled`` loss has no τ.
* Choice (defaults): K = 3 interests, r = 3 routing iterations (Sabour et al.'s; Algorithm 1 takes r as an
  input), σ = 1 for the routing logits, p = 2, d = 32. The paper studies σ and p (larger p trains better, hard
  attention the limit) and sets K per data set; these values were not checked against its text and are ours.
  Here softmax(p·s) makes p an inverse temperature (see :mod:`rec_models.layers.capsule`).
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import CATEGORICAL, CONTEXT, ITEM, NUMERIC, SEQUENCE, USER, ModelInputs
from rec_models.layers import MLP, BehaviorToInterestRouting, FieldEmbedding, LabelAwareAttention
from rec_models.registry import register
from rec_models.retrieval.in_batch import SampledOrInBatch
from rec_models.retrieval.towers import lookup, pooled_context



@register('mind')
class MIND(SampledOrInBatch):
    """Multi-interest extractor over the history, label-aware attention in training (module docstring).

    Args:
        embedding_dim: d, the width of every table, of e_i and of v_u^k.
        num_interests: K, the most interests per user.
        interest_dim: d', the width of the interest capsules (S ∈ R^{d×d'}; default d, the paper's S ∈ R^{d×d}).
        iterations: r, routing iterations.
        adaptive_interests: K'_u = max(1, min(K, ⌊log₂ |I_u|⌋)) interests per user (eq. 9) if set, else K.
        routing_logit_stddev: σ of the routing logits b_ij ~ N(0, σ²).
        stop_routing_gradient: no gradient through the routing logits of the last iteration.
        power: p of the label-aware attention (≥ 0; 0 averages the interests, large p picks the best).
        hidden_units: the ReLU layers of H before its d-wide output layer.
        relu_output: ReLU on H's output layer too.
        negatives: ``sampled`` or ``in_batch`` (module docstring).
        num_sampled: negatives a batch of the sampled softmax (capped at V − 2).
        temperature: τ of the in-batch softmax (``in_batch`` only).
        l2: λ of the mini-batch-aware L2 of the embedding tables.
        dropout: dropout in H.
        logq, uniform_negatives, frequency_*: as :class:`~rec_models.retrieval.in_batch.InBatchRetrieval`
            (``in_batch`` only; with ``sampled`` logq is recorded as ``none``).
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    MULTI_INTEREST = True

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=32, num_interests=3, interest_dim=None,
                 iterations=3, adaptive_interests=True, routing_logit_stddev=1.0, stop_routing_gradient=False,
                 power=2.0, hidden_units=(128,), relu_output=True, negatives='sampled', num_sampled=1000,
                 temperature=1.0, l2=0.0, dropout=0.0, logq='streaming', **kwargs):
        self.check_hparams(dict(negatives=negatives, num_interests=num_interests, iterations=iterations,
                                power=power, num_sampled=num_sampled, embedding_dim=embedding_dim,
                                interest_dim=interest_dim, uniform_negatives=kwargs.get('uniform_negatives', 0),
                                temperature=temperature, logq=logq))
        super().__init__(inputs, frequencies=frequencies, temperature=temperature,
                         logq=logq if negatives == 'in_batch' else 'none', **kwargs)
        interest_dim = interest_dim or embedding_dim
        self.hparams.update(embedding_dim=embedding_dim, num_interests=num_interests, interest_dim=interest_dim,
                            iterations=iterations, adaptive_interests=adaptive_interests,
                            routing_logit_stddev=routing_logit_stddev, stop_routing_gradient=stop_routing_gradient,
                            power=power, hidden_units=tuple(hidden_units), relu_output=relu_output,
                            negatives=negatives, num_sampled=num_sampled, l2=l2, dropout=dropout)
        item_names = {f.name for f in inputs.in_group(ITEM) if f.kind == CATEGORICAL}
        self.candidate_fields = tuple(f for f in inputs.in_group(ITEM) if f.kind == CATEGORICAL)
        self.history_fields = tuple(f for f in inputs.of_kind(SEQUENCE) if f.query in item_names)
        if not self.history_fields:
            raise ValueError('MIND needs a behaviour history of items: no sequence input has an item field as its '
                             f'query (item fields: {sorted(item_names)})')
        self.profile_fields = tuple(f for f in inputs.fields if f.group in (USER, CONTEXT) and f.kind != SEQUENCE)
        used = set(self.candidate_fields + self.history_fields + self.profile_fields)
        tables = dataclasses.replace(inputs, fields=tuple(f for f in inputs.fields if f in used))  # no unused table
        self.embedding = FieldEmbedding(tables.with_embedding_dim(embedding_dim), l2=l2, frequencies=frequencies,
                                        name='embedding')
        self.embedding.build(None)
        self.routing = BehaviorToInterestRouting(num_interests, interest_dim, iterations=iterations,
                                                 logit_stddev=routing_logit_stddev, adaptive=adaptive_interests,
                                                 stop_routing_gradient=stop_routing_gradient, name='routing')
        self.routing.build((None, None, embedding_dim))
        self.user_layers = MLP(hidden_units, dropout=dropout, output_units=embedding_dim, name='user_layers')  # H
        profile_width = sum(1 if f.kind == NUMERIC else embedding_dim for f in self.profile_fields)
        self.user_layers.build((None, num_interests, interest_dim + profile_width))
        self.label_attention = LabelAwareAttention(power, name='label_aware_attention')
        self.use_sampled_softmax(num_sampled)

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        for name in ('num_interests', 'iterations', 'num_sampled', 'embedding_dim'):
            if hparams.get(name, 1) < 1:
                raise ValueError(f'{name} must be ≥ 1, got {hparams[name]}')
        if hparams.get('interest_dim') is not None and hparams['interest_dim'] < 1:
            raise ValueError(f'interest_dim must be ≥ 1 (or None: d), got {hparams["interest_dim"]}')
        if hparams.get('power', 0.0) < 0:
            raise ValueError(f'power (p of the label-aware attention) must be ≥ 0, got {hparams["power"]}')
        if hparams.get('routing_logit_stddev', 1.0) < 0:
            raise ValueError(f'routing_logit_stddev must be ≥ 0, got {hparams["routing_logit_stddev"]}')

    # Embedding & Pooling layer.
    def item_vectors(self, item_features):
        """e_i ``[N, d]``: the mean of the item's categorical-field embeddings."""
        embedded = lookup(self.embedding, item_features, self.candidate_fields)
        return tf.add_n([embedded[f.name] for f in self.candidate_fields]) / len(self.candidate_fields)

    def behaviour_vectors(self, features):
        """``[B, L, d]``: each history step's item embedding (mean over the history fields), and its mask."""
        embedded = lookup(self.embedding, features, self.history_fields)
        steps = tf.add_n([embedded[f.name] for f in self.history_fields]) / len(self.history_fields)
        return steps, self.sequence_mask(features, self.history_fields[0])

    def profile(self, features):
        """p_u ``[B, P]`` (None without profile or context fields)."""
        if not self.profile_fields:
            return None
        return pooled_context(self.embedding, features, self.profile_fields)

    def interests(self, features, training=False):
        """``(capsules [B, K, d'], interest mask [B, K])`` of the B2I routing."""
        behaviours, mask = self.behaviour_vectors(features)
        return self.routing(behaviours, mask, training=training)

    def query_embedding(self, features, training=False):
        """``(V_u [B, K, d], interest mask [B, K])``."""
        if training and self.hparams['l2']:
            self.add_loss(sum(self.embedding.regularization(table, features) for table in self.embedding.tables))
        capsules, interest_mask = self.interests(features, training=training)
        parts = [capsules]
        profile = self.profile(features)
        if profile is not None:
            parts.append(tf.tile(profile[:, tf.newaxis, :], [1, self.hparams['num_interests'], 1]))
        vectors = self.user_layers(tf.concat(parts, axis=-1), training=training)
        if self.hparams['relu_output']:
            vectors = tf.nn.relu(vectors)
        return vectors, interest_mask

    def candidate_embedding(self, item_features, training=False):
        return self.item_vectors(item_features)

    def training_query(self, query, candidates, interest_mask=None):
        """The label-aware attention's v_u ``[B, d]`` of each row given its positive e_i (``candidates[:B]``)."""
        if interest_mask is None:
            interest_mask = tf.ones(tf.shape(query)[:2], tf.bool)
        return self.label_attention(query, interest_mask, candidates[:tf.shape(query)[0]])

    def output_table(self, training=False):
        return self.index_embeddings(training=training), tf.zeros([self.num_items])

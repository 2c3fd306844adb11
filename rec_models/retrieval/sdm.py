"""SDM: the Sequential Deep Matching model (Lv et al., *SDM: Sequential Deep Matching Model for Online Large-scale
Recommender System*, CIKM 2019, arXiv:1909.00385).

A user's query is the fusion of her current session (short-term) and her earlier behaviours (long-term); an item is
a row of an output embedding table, and an item's score is ⟨o^u, v_i⟩:

    e_u   = tanh(W_u [profile, context] + b_u)                     user profile embedding, d wide
    e_i^t = concat_f E_f[i_t^f]                                     a step: its attribute embeddings concatenated
                                                                    (item id, category, brand …)
    short-term, over the newest session S^u = (i_1 … i_m):
    h_1 … h_m = LSTM(e_i^1 … e_i^m)                                 (d units)
    ĥ_1 … ĥ_m = LayerNorm(h + Dropout(MultiHead(h)))                multi-head self-attention over the session
    s^u = Σ_k α_k ĥ_k,   α = softmax_k(ĥ_k · e_u)                   user attention
    long-term, over the behaviours L^u before the session, for each attribute f:
    z_f = Σ_j softmax_j(g_j^f · e_u) g_j^f                          g_j^f = E_f[l_j^f]
    p^u = tanh(W^p [z_f1, z_f2, …] + b)                            (+ e_u: Choice (profile), below)
    gated fusion:
    G^u = σ(W¹ e_u + W² s^u + W³ p^u + b)
    o^u = (1 − G^u) ⊙ p^u + G^u ⊙ s^u                               the query, [B, d]
    score(i) = ⟨o^u, v_i⟩,   v_i = V[i]                             V an item table of its own (the output table)

Sources: the equations above were checked against summaries of the paper that quote them (§3: e_u, e_i, the
LSTM, the self- and user attention, z_f, p^u, G^u, o^u, the output table; the session and 7-day definitions), not
against its text, and against the authors' released code (github.com/alicogintel/SDM, ``code/models``,
``code/model_utils``), whose departures are noted below.

**Sessions** come from the spec's ``behavior.sessions`` (:mod:`feature_spec.sessions`: DSIN's layout, K slots of T
steps, oldest first, the used slots first and the empty ones after). The paper's session is a session id or gaps
under 10 minutes, at most 50 items, and its long-term behaviours are the past 7 days before the session; here the
spec's gap and T decide. S^u is the newest *non-empty* slot (the last with a non-zero length: Transform never leaves
an empty slot before a used one, but a hand-written layout may). Without ``behavior.sessions`` the model refuses to
build.

**Long-term behaviours** (``long_term``):

* ``sequence`` (default): the flat behaviour sequence (the spec's most recent ``behavior.max_length`` behaviours)
  without its last m steps, m the newest session's kept length: the behaviours before the newest session. The
  flat sequence is usually the longer window (the synthetic spec: 50 steps against 4 older sessions × 10) and
  closest to the paper's 7 days. A newest session longer than T keeps only its T newest behaviours in the layout;
  its older ones stay in L^u, which is the paper's own rule (a session of over 50 items is split, its earlier part
  being an older session).
* ``sessions``: the behaviours of the older slots of the session layout (at most (K − 1) · T; what is beyond K
  sessions or T steps a session is lost).

**Choices.**

* Choice (item attributes): the behaviour sequences whose ``query`` is a categorical item field (``hist_item_id`` →
  ``item_id``, ``hist_category`` → ``category``), in the session layout for S^u and flat or in sessions for L^u.
  Sequences without a query (time gaps, behaviour types) are left out: the paper's attributes are id features
  (item id, leaf and first-level category, shop, brand). A step concatenates them (the paper's e_i = concat_f; the
  authors' code concatenates too).
* Choice (widths): every table is d wide (``embedding_dim``): the paper writes g^f ∈ R^d and attends to them with
  e_u ∈ R^d by a dot product. The authors' released code (alicogintel/SDM) gives the tables their own widths
  (item 64, shop 32, brand and category 16) and an additive attention for L^u instead. The LSTM has d units, so that
  ĥ, s^u, p^u, e_u and o^u are all d wide, as the fusion needs.
* Choice (e_u): the user group's and the context group's non-sequence fields (numeric values as one column each)
  through one tanh layer to d (the authors' code passes its profile through a tanh layer to the width of the user
  attention's query). The paper's profile is age, gender and life stage (with the user id in the authors' code);
  the request context is ours. A spec with neither gets a learned constant e_u.
* Choice (profile): ``profile_in_preference`` (default False, the paper's p^u = tanh(W^p z^u + b)) feeds e_u to
  p^u's layer alongside z^u when set. In the paper e_u reaches o^u only through the attention weights and the gate:
  a user with no behaviour has s^u = 0 and p^u = tanh(b), hence o^u = (1 − G^u) ⊙ tanh(b), her identity coming
  through the gate alone. The gate does carry it: on the registry-wide toy rule "each user always clicks one item"
  (random histories), the paper's form reaches Recall@1 0.68–0.70 after 20 epochs (TensorFlow seeds 0, 1), the
  profile in p^u 0.94–0.98, popularity 0.07. Set it where profiles matter more than behaviours (cold users).
* Choice (self-attention): MultiHead(h) has h heads of d/h, over all the session's steps (the paper's equations at
  the prediction time t; the authors' code masks it causally because it trains every step of a session), with the
  residual connection and the LayerNorm of the authors' code (the paper writes neither); dropout on its output.
* Choice (user attention): α = softmax(ĥ · e_u) without a scale (the paper; the code divides by √d).
* Choice (empty parts): a row with no session has s^u = 0; a row with no long-term behaviour has z_f = 0 (so
  p^u = tanh(b), or tanh(W^p [0, e_u] + b) with the profile); padded steps take part in nothing, so padding
  changes no output.
* Choice (training, ``negatives``): ``sampled`` (default) is the paper's sampled softmax over the output table V
  (:class:`~rec_models.tasks.sampled_softmax.SampledSoftmaxTask`: log-uniform proposal, −log Q correction,
  accidental hits removed), ``num_sampled`` negatives a batch; it gathers only the sampled rows of V, so it costs
  the same at V = 10⁶ as at 10⁴. The output biases are zeros, as the authors' code has them (its ``nce_biases``
  are ``tf.zeros``), so that training and serving score alike. ``in_batch`` is
  :class:`~rec_models.retrieval.in_batch.InBatchRetrieval`'s in-batch softmax with the logQ correction (``logq``,
  optional ``uniform_negatives``), τ = ``temperature`` (1 by default: o^u and v are not normalised). Each row is
  trained on its own target only; the authors' code also trains every step of the session on its next item.
* Choice (defaults), from the authors' code (``hyperparams.py``; its run flags where they differ from the
  defaults): d = 64 (item embedding, LSTM units and softmax width), 4 heads, one LSTM layer, dropout 0.2 (on the
  LSTM inputs and the attention output), 2000 sampled negatives (capped at V − 2). The code's run flags use a GRU;
  the paper's equations are an LSTM's, which this is (Keras's, forget-gate bias 1 as the code's ``forget_bias``).
"""

import dataclasses

import tensorflow as tf

from feature_spec.model_inputs import BEHAVIOR, CATEGORICAL, CONTEXT, ITEM, NUMERIC, SEQUENCE, USER, ModelInputs
from rec_models.layers import FieldEmbedding, MultiHeadSelfAttention
from rec_models.layers.softmax import masked_softmax
from rec_models.registry import register
from rec_models.retrieval.in_batch import SampledOrInBatch
from rec_models.retrieval.towers import lookup, pooled_context

LONG_TERM = ('sequence', 'sessions')
GATE = 'gate'


@register('sdm', negatives='sampled')   # so that validate sees the loss the other checks depend on
class SDM(SampledOrInBatch):
    """Short-term session (LSTM, self-attention, user attention) and long-term attributes fused by a gate (module
    docstring); :meth:`user_state` gives e_u, s^u, p^u, G^u and o^u.

    Args:
        embedding_dim: d, the width of every table, of the LSTM, of e_u, s^u, p^u and o^u and of the output table.
        heads: heads of the self-attention (d must be a multiple).
        long_term: ``sequence`` or ``sessions``: where L^u comes from (module docstring).
        profile_in_preference: e_u joins p^u's input (not in the paper; module docstring, Choice (profile)).
        dropout: on the LSTM's inputs and on the self-attention's output (training only).
        negatives: ``sampled`` or ``in_batch``.
        num_sampled: negatives a batch of the sampled softmax (capped at V − 2).
        temperature: τ of the in-batch softmax (``in_batch`` only).
        l2: λ of the mini-batch-aware L2 of the input embedding tables.
        logq, uniform_negatives, frequency_*: as :class:`~rec_models.retrieval.in_batch.InBatchRetrieval`
            (``in_batch`` only; with ``sampled`` logq is recorded as ``none``).
        Others: as :class:`~rec_models.retrieval.base.RetrievalModel`.
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, embedding_dim=64, heads=4, long_term='sequence',
                 profile_in_preference=False, dropout=0.2, negatives='sampled', num_sampled=2000, temperature=1.0,
                 l2=0.0, logq='streaming', **kwargs):
        if inputs.sessions is None:
            raise ValueError('SDM needs the behaviours divided into sessions (its short-term session is the newest '
                             'one): give the feature spec a "behavior.sessions" section (time, gap_seconds, '
                             'max_sessions, max_length)')
        self.check_hparams(dict(embedding_dim=embedding_dim, heads=heads, long_term=long_term, dropout=dropout,
                                negatives=negatives, num_sampled=num_sampled, temperature=temperature, l2=l2,
                                logq=logq, uniform_negatives=kwargs.get('uniform_negatives', 0)))
        super().__init__(inputs, frequencies=frequencies, temperature=temperature,
                         logq=logq if negatives == 'in_batch' else 'none', **kwargs)
        self.hparams.update(embedding_dim=embedding_dim, heads=heads, long_term=long_term,
                            profile_in_preference=bool(profile_in_preference), dropout=dropout, negatives=negatives,
                            num_sampled=num_sampled, l2=l2)
        item_names = {f.name for f in inputs.in_group(ITEM) if f.kind == CATEGORICAL}
        self.session_fields = tuple(f for f in inputs.sessions.fields if f.query in item_names)
        if not self.session_fields:
            raise ValueError('SDM needs item attributes in the behaviour sessions: no sequence of the feature spec '
                             f'has an item field as its query (item fields: {sorted(item_names)})')
        by_query = {f.query: f for f in inputs.of_kind(SEQUENCE) if f.group == BEHAVIOR}
        self.sequence_fields = tuple(by_query[f.query] for f in self.session_fields)    # the same attributes, flat
        self.max_sessions = inputs.sessions.max_sessions
        self.session_steps = self.session_fields[0].max_length
        self.profile_fields = tuple(f for f in inputs.fields if f.group in (USER, CONTEXT) and f.kind != SEQUENCE)
        used = set(self.profile_fields + self.sequence_fields)
        tables = dataclasses.replace(inputs, fields=tuple(f for f in inputs.fields if f in used) + self.session_fields,
                                     sessions=None)
        self.embedding = FieldEmbedding(tables.with_embedding_dim(embedding_dim), l2=l2, frequencies=frequencies,
                                        name='embedding')
        self.embedding.build(None)
        d = embedding_dim
        profile_width = sum(1 if f.kind == NUMERIC else d for f in self.profile_fields)
        self.profile_layer = tf.keras.layers.Dense(d, activation='tanh', name='profile')              # e_u
        self.profile_layer.build((None, profile_width))
        self.lstm = tf.keras.layers.LSTM(d, return_sequences=True, dropout=dropout, name='session_lstm')
        self.lstm.build((None, self.session_steps, d * len(self.session_fields)))
        self.self_attention = MultiHeadSelfAttention(heads, d // heads, name='session_self_attention')
        self.self_attention.build((None, self.session_steps, d))
        self.attention_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6, name='session_attention_norm')
        self.attention_norm.build((None, self.session_steps, d))
        self.attention_dropout = tf.keras.layers.Dropout(dropout)
        preference_width = d * len(self.session_fields) + (d if profile_in_preference else 0)
        self.preference_layer = tf.keras.layers.Dense(d, activation='tanh', name='preference')        # W^p, b
        self.preference_layer.build((None, preference_width))
        self.gate_layer = tf.keras.layers.Dense(d, activation='sigmoid', name='fusion_gate')         # [W¹ W² W³], b
        self.gate_layer.build((None, 3 * d))
        self.item_table = self.add_weight(name='item_output/embeddings', shape=(self.num_items, d),
                                          initializer=tf.keras.initializers.TruncatedNormal(stddev=0.05))
        self.use_sampled_softmax(num_sampled)

    @classmethod
    def check_hparams(cls, hparams):
        super().check_hparams(hparams)
        if hparams.get('long_term', 'sequence') not in LONG_TERM:
            raise ValueError(f'long_term must be one of {LONG_TERM}, got {hparams["long_term"]!r}')
        for name in ('embedding_dim', 'heads', 'num_sampled'):
            if hparams.get(name, 1) < 1:
                raise ValueError(f'{name} must be ≥ 1, got {hparams[name]}')
        if hparams.get('embedding_dim', 64) % hparams.get('heads', 4):
            raise ValueError(f'embedding_dim ({hparams.get("embedding_dim", 64)}) must be a multiple of heads '
                             f'({hparams.get("heads", 4)}): each head is embedding_dim / heads wide')
        if not 0 <= hparams.get('dropout', 0.0) < 1:
            raise ValueError(f'dropout must be in [0, 1), got {hparams["dropout"]}')
        if hparams.get('l2', 0.0) < 0:
            raise ValueError(f'l2 must be ≥ 0, got {hparams["l2"]}')

    # The user profile.
    def profile_embedding(self, features):
        """e_u ``[B, d]``."""
        if self.profile_fields:
            profile = pooled_context(self.embedding, features, self.profile_fields)
        else:
            rows = tf.shape(features[self.model_inputs.sessions.length_feature])[0]
            profile = tf.zeros(tf.stack([rows, 0]))
        return self.profile_layer(profile)

    # The sessions.
    def newest_session(self, features):
        """``(slot [B] int, length [B] int64)`` of each row's newest non-empty session (slot 0, length 0 if none)."""
        lengths = tf.cast(features[self.model_inputs.sessions.length_feature], tf.int64)            # [B, K]
        slots = tf.range(self.max_sessions, dtype=tf.int64)[tf.newaxis, :]
        newest = tf.reduce_max(tf.where(lengths > 0, slots, -1), axis=1)
        slot = tf.maximum(newest, 0)
        length = tf.where(newest >= 0, tf.gather(lengths, slot, batch_dims=1), 0)
        return slot, length

    def _session_steps(self, features, slot):
        """``[B, T, F·d]``: the steps of slot ``slot`` (attributes concatenated)."""
        k, t = self.max_sessions, self.session_steps
        parts = []
        for field in self.session_fields:
            ids = tf.reshape(features[field.name], [-1, k, t])
            parts.append(tf.gather(self.embedding.tables[field.table], tf.gather(ids, slot, batch_dims=1)))
        return tf.concat(parts, axis=-1)

    def short_term(self, features, profile, training=False):
        """``(s^u [B, d], α [B, T])`` over the newest session."""
        slot, length = self.newest_session(features)
        mask = tf.sequence_mask(length, self.session_steps)                                          # [B, T]
        hidden = self.lstm(self._session_steps(features, slot), mask=mask, training=training)       # h
        hidden *= tf.cast(mask, hidden.dtype)[..., tf.newaxis]
        attended, _ = self.self_attention(hidden, mask)
        refined = self.attention_norm(hidden + self.attention_dropout(attended, training=training))  # ĥ
        weights = masked_softmax(tf.einsum('btd,bd->bt', refined, profile), mask)                   # α
        return tf.einsum('bt,btd->bd', weights, refined), weights

    def long_term_behaviours(self, features):
        """``({attribute: [B, N, d]}, mask [B, N])``: the embeddings of L^u's behaviours per attribute (keyed by
        the item field it stands for) and which of the N steps are long-term behaviours."""
        slot, newest_length = self.newest_session(features)
        if self.hparams['long_term'] == 'sessions':
            k, t = self.max_sessions, self.session_steps
            lengths = tf.cast(features[self.model_inputs.sessions.length_feature], tf.int64)
            older = tf.range(k, dtype=tf.int64)[tf.newaxis, :] < slot[:, tf.newaxis]                 # [B, K]
            steps = tf.sequence_mask(lengths, t) & older[:, :, tf.newaxis]                           # [B, K, T]
            mask = tf.reshape(steps, [-1, k * t])
            embedded = lookup(self.embedding, features, self.session_fields)
            return {f.query: embedded[f.name] for f in self.session_fields}, mask
        lengths = tf.cast(features[self.model_inputs.sequence_length], tf.int64)
        mask = tf.sequence_mask(tf.maximum(lengths - newest_length, 0), self.sequence_fields[0].max_length)
        embedded = lookup(self.embedding, features, self.sequence_fields)
        return {f.query: embedded[f.name] for f in self.sequence_fields}, mask

    def long_term(self, features, profile):
        """``(p^u [B, d], {attribute: z_f [B, d]})``."""
        behaviours, mask = self.long_term_behaviours(features)
        pooled = {}
        for field in self.session_fields:
            values = behaviours[field.query]                                                          # g^f
            weights = masked_softmax(tf.einsum('bnd,bd->bn', values, profile), mask)
            pooled[field.query] = tf.einsum('bn,bnd->bd', weights, values)                            # z_f
        parts = [pooled[f.query] for f in self.session_fields]
        if self.hparams['profile_in_preference']:
            parts.append(profile)
        return self.preference_layer(tf.concat(parts, axis=-1)), pooled

    # The gated fusion.
    def fuse(self, profile, short, preference):
        """``(o^u, G^u)``: G = σ(W¹ e_u + W² s + W³ p + b), o = (1 − G) ⊙ p + G ⊙ s."""
        gate = self.gate_layer(tf.concat([profile, short, preference], axis=-1))
        return (1.0 - gate) * preference + gate * short, gate

    def user_state(self, features, training=False):
        """``{'profile', 'short_term', 'preference', 'gate', 'query'}``: e_u, s^u, p^u, G^u and o^u."""
        profile = self.profile_embedding(features)
        short, _ = self.short_term(features, profile, training=training)
        preference, _ = self.long_term(features, profile)
        query, gate = self.fuse(profile, short, preference)
        return {'profile': profile, 'short_term': short, 'preference': preference, GATE: gate, 'query': query}

    def query_embedding(self, features, training=False):
        if training and self.hparams['l2']:
            self.add_loss(sum(self.embedding.regularization(table, features) for table in self.embedding.tables))
        return self.user_state(features, training=training)['query']

    def candidate_embedding(self, item_features, training=False):
        return tf.gather(self.item_table, item_features[self.item_id.name])

    def output_table(self, training=False):
        return self.item_table, tf.zeros([self.num_items])

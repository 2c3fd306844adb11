"""MIND's multi-interest extractor and label-aware attention (Li et al., *Multi-Interest Network with Dynamic
Routing for Recommendation at Tmall*, CIKM 2019, arXiv:1904.08030, §4.2–4.3).

A user is a set of interests V_u = (v_u^1 … v_u^K) ∈ R^{K×d}; an item i scores max_k e_iᵀ v_u^k at serving.

**Behaviour-to-interest (B2I) dynamic routing** (§4.2, Algorithm 1) clusters the behaviour embeddings
e_1 … e_L (behaviour capsules) into K interest capsules. It is Sabour et al.'s routing-by-agreement with three
changes the paper lists: ONE bilinear map S ∈ R^{d×d'} shared by every behaviour/interest pair (behaviour
sequences have variable length, and all behaviours should land in one space), routing logits drawn at random
instead of zeros (with a shared S, zero logits would give every interest the same value, for ever), and a
per-user number of interests. For r iterations:

    b_ij ~ N(0, σ²)                                     drawn afresh per example and per forward pass
    w_ij = softmax_j(b_ij)                              over the user's K'_u interests, for each behaviour i
    z_j  = Σ_i w_ij · S e_i                             over the valid behaviours only
    u_j  = squash(z_j) = ‖z_j‖² / (1 + ‖z_j‖²) · z_j / ‖z_j‖
    b_ij ← b_ij + u_jᵀ S e_i

and V_u = (u_1 … u_K). The update of b after the last iteration (Algorithm 1 and Sabour et al.'s Procedure 1
do it inside the loop) is never read, so it is skipped: the outputs are the same.

**Adaptive interest count** (§4.2, eq. 9): K'_u = max(1, min(K, log₂ |I_u|)), |I_u| the number of valid
behaviours. Capsules j ≥ K'_u get no routing weight, are 0 and are marked invalid in ``interest_mask``.

**Label-aware attention** (§4.3), training only: v_u = V_u · softmax(pow(V_uᵀ e_i, p)) over the valid interests,
where e_i is the label (target) item; p = 0 is a uniform average, and large p approaches hard attention (the
interest that matches the target best).

Choices (the paper does not settle these; each is documented where it is implemented):

* Choice (rounding of K'_u): K'_u = max(1, min(K, ⌊log₂ |I_u|⌋)), computed in integers: a user needs 2^k
  valid behaviours for k interests (1–3 → 1, 4–7 → 2, 8–15 → 3, …). The paper's eq. 9 gives no rounding.
  Other implementations differ: DeepMatch floors log₂(1 + |I_u|) (3 → 2, 7 → 3), TorchEasyRec's mask
  ``arange(K) < log₂ |I_u|`` amounts to a ceiling (3 → 2, 5 → 3). A user without behaviours gets K'_u = 1
  (the formula's max(1, ·)) with a zero capsule: downstream, MIND concatenates each capsule with the user
  profile before the ReLU layers, so that slot still yields a profile-only user vector.
* Choice (logit draw): ``tf.random.normal([B, L, K])`` at every training call: one draw per example and per
  forward pass, never a layer weight. (DeepMatch kept b in a non-trainable weight built once, added the
  batch-summed agreement to it at each call, and so shared and carried it across examples and batches —
  issues #44/#75, fixed in v0.2.1, June 2022.)
* Choice (inference): the paper's Algorithm 1 draws at every call and says nothing of serving. A served model
  should give a user the same interests on every request, so at inference (``training`` falsy) the logits are
  a fixed draw ``σ · stateless_normal([L, K], seed=(inference_seed, 0))`` shared by all examples: b_ij depends
  on the position i and the interest j only, so a user's interests do not depend on the rest of the batch (nor,
  with TensorFlow's Philox generator, which fills the draw in row-major order, on how far the batch is padded).
  Zeros would not do: with one shared S all capsules would stay equal. ``deterministic_inference=False`` draws
  at random at inference too (the paper's literal reading).
* Choice (gradients): the routing is unrolled and differentiated through, logits included (as Sabour et al.'s
  routing; the paper says nothing of it). ``stop_routing_gradient=True`` treats the logits entering the last
  iteration as constants, ComiRec's and TorchEasyRec's practice: the gradient then reaches S through the last
  weighted sum only. Values are the same either way.
* Choice (label-aware power): pow(s, p) of a raw dot product is NaN for a negative score and a non-integer p
  (DeepMatch's ``tf.pow(weight, pow_p)``), and for an even p it rewards an interest that points *away* from the
  target as much as one that points towards it. Here the power is taken of the positive attention kernel
  exp(s) instead: softmax(exp(s)^p) = softmax(p · s), a temperature. It is defined for every score, is
  monotone in it, is a uniform average at p = 0 and the hard (argmax) attention as p → ∞ — the two limits the
  paper describes. A sign-preserving power sign(s)|s|^p was rejected: for |s| < 1 it tends to 0 as p grows, so
  the attention would go to uniform, not hard.
* Choice (layout): injected logits are ``[B, L, K]`` (behaviour i, interest j: b_ij as written), and the
  softmax is over interests j for each behaviour i (the paper's and Sabour et al.'s; DeepMatch's softmax runs
  over behaviours).
"""

import tensorflow as tf

from rec_models.layers.softmax import masked_softmax


def squash(z, axis=-1):
    """‖z‖² / (1 + ‖z‖²) · z / ‖z‖ along ``axis``, computed as z · ‖z‖ / (1 + ‖z‖²): the result's norm is in
    [0, 1); z = 0 gives 0 with a zero (finite) gradient."""
    squared = tf.reduce_sum(tf.square(z), axis=axis, keepdims=True)
    positive = squared > 0
    safe = tf.where(positive, squared, tf.ones_like(squared))                       # no sqrt'(0) in the gradient
    norm = tf.where(positive, tf.sqrt(safe), tf.zeros_like(squared))
    return z * (norm / (1.0 + squared))


def adaptive_interest_count(lengths, num_interests):
    """K'_u = max(1, min(K, ⌊log₂ |I_u|⌋)) for ``lengths`` (|I_u|, any integer shape) → int32, same shape.

    Counted exactly in integers (the number of k in 1 … K with 2^k ≤ |I_u|), so powers of two do not depend on
    floating-point log₂; a length of 0 gives 1."""
    lengths = tf.cast(lengths, tf.int64)
    top = min(int(num_interests), 62)
    powers = tf.bitwise.left_shift(tf.ones([top], tf.int64), tf.range(1, top + 1, dtype=tf.int64))
    count = tf.reduce_sum(tf.cast(lengths[..., tf.newaxis] >= powers, tf.int32), axis=-1)
    return tf.maximum(count, 1)


class BehaviorToInterestRouting(tf.keras.layers.Layer):
    """B2I dynamic routing: ``call(behaviours [B, L, d], mask [B, L] bool, initial_logits=None, training=None)
    → (interests [B, K, d'], interest_mask [B, K] bool)``.

    ``initial_logits`` ``[B, L, K]`` replaces the draw of b_ij (tests inject it); values at padded behaviours
    are ignored. Padded behaviours take no part (their values, whatever they are, never reach the outputs);
    interests j ≥ K'_u are 0 and masked.

    Args:
        num_interests: K, the most interests per user.
        interest_dim: d', the width of S e_i and of the interests.
        iterations: r, routing iterations (≥ 1).
        logit_stddev: σ of the initial logits b_ij ~ N(0, σ²).
        adaptive: K'_u = max(1, min(K, ⌊log₂ |I_u|⌋)) interests per user if set, else K for everyone.
        deterministic_inference: at inference use a fixed draw (see the module docstring) instead of a fresh one.
        inference_seed: seed of that fixed draw.
        stop_routing_gradient: no gradient through the logits entering the last iteration.
        kernel_initializer: initializer of S.
    """

    def __init__(self, num_interests, interest_dim, iterations=3, logit_stddev=1.0, adaptive=True,
                 deterministic_inference=True, inference_seed=0, stop_routing_gradient=False,
                 kernel_initializer='glorot_normal', **kwargs):
        super().__init__(**kwargs)
        if num_interests < 1 or iterations < 1:
            raise ValueError('B2I routing needs at least one interest and one iteration')
        self.num_interests = int(num_interests)
        self.interest_dim = int(interest_dim)
        self.iterations = int(iterations)
        self.logit_stddev = float(logit_stddev)
        self.adaptive = bool(adaptive)
        self.deterministic_inference = bool(deterministic_inference)
        self.inference_seed = int(inference_seed)
        self.stop_routing_gradient = bool(stop_routing_gradient)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(name='bilinear_map', shape=(int(input_shape[-1]), self.interest_dim),
                                      initializer=self.kernel_initializer)                          # S
        super().build(input_shape)

    def interest_count(self, mask):
        """K'_u for each example of ``mask`` [B, L] → int32 [B]."""
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        if self.adaptive:
            return adaptive_interest_count(lengths, self.num_interests)
        return tf.fill(tf.shape(lengths), self.num_interests)

    def _draw(self, shape, training):
        def fresh():
            return tf.random.normal(shape, stddev=self.logit_stddev)

        def fixed():
            draw = tf.random.stateless_normal(shape[1:], seed=[self.inference_seed, 0], stddev=self.logit_stddev)
            return tf.broadcast_to(draw[tf.newaxis], shape)

        if not self.deterministic_inference:
            return fresh()
        if training is None or isinstance(training, bool):
            return fresh() if training else fixed()
        return tf.cond(tf.cast(training, tf.bool), fresh, fixed)

    def call(self, behaviours, mask, initial_logits=None, training=None):
        valid = tf.cast(mask, tf.bool)
        interest_mask = tf.sequence_mask(self.interest_count(valid), self.num_interests)           # [B, K]
        behaviours = tf.where(valid[..., tf.newaxis], behaviours, tf.zeros_like(behaviours))
        mapped = tf.einsum('bld,de->ble', behaviours, self.kernel)                                  # S e_i
        shape = tf.concat([tf.shape(valid), [self.num_interests]], axis=0)
        if initial_logits is None:
            logits = self._draw(shape, training)
        else:
            logits = tf.cast(initial_logits, mapped.dtype)
        routed = tf.logical_and(valid[..., tf.newaxis], interest_mask[:, tf.newaxis, :])           # [B, L, K]
        logits = tf.where(routed, logits, tf.zeros_like(logits))
        for iteration in range(self.iterations):
            last = iteration == self.iterations - 1
            if last and self.stop_routing_gradient:
                logits = tf.stop_gradient(logits)
            weights = masked_softmax(logits, routed)                       # softmax over j; 0 at padded rows
            interests = squash(tf.einsum('blk,ble->bke', weights, mapped))                         # u_j
            if not last:
                logits += tf.einsum('bke,ble->blk', interests, mapped)                              # + u_jᵀ S e_i
        interests *= tf.cast(interest_mask, interests.dtype)[..., tf.newaxis]
        return interests, interest_mask

    def get_config(self):
        return {**super().get_config(), 'num_interests': self.num_interests, 'interest_dim': self.interest_dim,
                'iterations': self.iterations, 'logit_stddev': self.logit_stddev, 'adaptive': self.adaptive,
                'deterministic_inference': self.deterministic_inference, 'inference_seed': self.inference_seed,
                'stop_routing_gradient': self.stop_routing_gradient,
                'kernel_initializer': tf.keras.initializers.serialize(self.kernel_initializer)}


class LabelAwareAttention(tf.keras.layers.Layer):
    """v_u = V_u · softmax(p · V_uᵀ e_i) over the valid interests: ``call(interests [B, K, d], interest_mask
    [B, K], target [B, d]) → [B, d]``.

    Choice: softmax(p · s) = softmax(exp(s)^p) stands for the paper's softmax(pow(s, p)) — defined for negative
    scores, a uniform average at p = 0, the argmax interest as p → ∞ (module docstring). Masked interests get
    weight 0; a row without valid interests gives 0.

    Args:
        power: p ≥ 0.
    """

    def __init__(self, power=2.0, **kwargs):
        super().__init__(**kwargs)
        if power < 0:
            raise ValueError(f'the label-aware attention power must be ≥ 0, got {power}')
        self.power = float(power)

    def call(self, interests, interest_mask, target):
        scores = tf.einsum('bkd,bd->bk', interests, target)
        weights = masked_softmax(self.power * scores, interest_mask)
        return tf.einsum('bk,bkd->bd', weights, interests)

    def get_config(self):
        return {**super().get_config(), 'power': self.power}

"""Streaming item-frequency estimation for the logQ correction of in-batch softmax (Xinyang Yi, Ji Yang, Lichan
Hong, Derek Zhiyuan Cheng, Lukasz Heldt, Aditee Kumthekar, Zhe Zhao, Li Wei, Ed Chi, *Sampling-Bias-Corrected
Neural Modeling for Large Corpus Item Recommendations*, RecSys 2019, §4, Algorithms 2 and 3; §6.1 for the
simulation).

The probability p that an item is in a batch is estimated through δ = 1 / p, the mean number of steps between two
batches that hold it. m hash functions h_i map an id into H buckets; A_i[b] is the last step bucket b was seen,
B_i[b] the estimated steps between its sightings. At step t = 1, 2, …, for each item y of the batch and i ∈ [m]:

    B_i[h_i(y)] ← (1 − α) · B_i[h_i(y)] + α · (t − A_i[h_i(y)])
    A_i[h_i(y)] ← t
    p̂(y) = 1 / max_i B_i[h_i(y)]

(an SGD step of rate α on the mean of the gaps, Proposition 4.1). Items that share a bucket pool their sightings, so
that the bucket's gap shrinks and p̂ over-estimates p; the maximum over m independent hashes keeps the bucket with
the fewest other items (the idea of count-min sketch). The correction itself is s_c(x, y) = s(x, y) − log p̂(y).

:func:`simulate` is the paper's simulation (§6.1), shared by the tests and ``benchmarks/frequency_estimation.py``.
"""

import numpy as np
import tensorflow as tf

PRIME = 2 ** 31 - 1  # P of the universal hashes ((a·x + b) mod P) mod H; a Mersenne prime


class StreamingFrequencyEstimator(tf.keras.layers.Layer):
    """Estimates, per item id, the probability p̂ that a batch holds it, from the stream of batches.

    ``update(ids)``: one training step t ← t + 1 with the batch's item ids (int64, any shape, flattened; in graph mode
    an op, eagerly None). ``call(ids) → p̂`` float32 of ids' shape; it reads the state and never changes it. In a
    train step: ``estimator.update(item_ids)`` then ``logits - tf.math.log(estimator(item_ids))``, so that every
    item asked about has been seen.

    State: non-trainable variables ``step`` (int64 scalar, t), ``last_seen`` (int64 [m, H], A), ``interval``
    (float32 [m, H], B) and ``hash_coefficients`` (int64 [m, 2], the (a, b) of each hash), created in ``__init__``:
    they are saved and restored with the model (``tf.train.Checkpoint``, ``tf.saved_model.save``; after
    ``tf.saved_model.load`` they are the loaded object's attributes of the same names, ``update`` and ``call`` are
    not exported: restore a checkpoint into a new layer to go on). A is int64 so that steps stay exact beyond
    float32's 2^24.

    Choices (the paper leaves them open):

    * Choice: duplicates. Each bucket of each hash is updated at most once per step, however many ids of the batch
      fall into it (the same id twice, or two ids that collide). p is the probability of being *in* a batch (the
      paper processes a batch's items at one step, and t − A = 0 for a second sighting in the same step would only
      be an artefact of the order); a shared bucket estimates the gaps of the union of its items.
    * Choice: never-seen items. p̂ = 1 / max(1, max_i B_i[h_i(y)]): B is floored at 1 step, i.e. p̂ ≤ 1 (a
      probability). A bucket never seen has B = ``initial_interval`` (default 0), so its p̂ is 1 (its logQ
      correction −log p̂ = 0), never inf. The floor also caps the start-up of B from 0 (B = α·t after the first
      sighting at step t while t < 1/α). The paper's simulation starts B at 100 (``initial_interval=100``): unseen
      items then get p̂ = 0.01.
    * Choice: A starts at 0 (as in the paper), so the first sighting at step t counts a gap of t.
    * Choice: hashes. h_i(x) = ((a_i · (x mod P) + b_i) mod P) mod H, P = 2^31 − 1, a_i ∈ [1, P), b_i ∈ [0, P)
      drawn from ``numpy.random.default_rng(seed)``; in int64 without overflow (a_i · (x mod P) + b_i < 2^62 + 2^31).
      Ids are non-negative vocabulary indices (a negative one is still hashed, as floormod(x, P)). The (a, b) are
      state too: a restored layer keeps the saved hashes whatever its ``seed``. Measured: consecutive ids are spread
      as a lattice, without any collision while their count ≤ H (ids 0 … 999 into 1250 or 5000 buckets).
    * Choice: the default α = 0.01, the paper's value for its Wikipedia (§6.2) and YouTube (§6.3) models.
    * Choice (``bias_correction``, off by default, the paper's estimate): B is an exponential moving average started
      at 0, so after c sightings of a bucket it is (1 − (1 − α)^c) times the mean gap (with α = 0.01, a quarter of
      it after 30 sightings): over a training of a few hundred steps every p̂ stays near 1 and the correction does
      nothing. With ``bias_correction`` the estimate is B / (1 − (1 − α)^c), c the bucket's sightings (the
      correction Adam applies to its moment estimates, Kingma & Ba 2015), exact from the first sighting on
      (``initial_interval`` must then be 0). The retrieval models turn it on.

    Replicas of a ``tf.distribute`` strategy that call ``update`` concurrently are not handled (the paper's
    parameter-server version reads and writes A, B and the global step per worker).

    Args:
        num_buckets: H, the buckets of each hash.
        num_hashes: m.
        learning_rate: α ∈ (0, 1].
        seed: draws the hashes' (a, b).
        initial_interval: B's starting value (0: the guard above gives p̂ = 1 until seen).
        bias_correction: divide B by 1 − (1 − α)^c (see the choices).
    """

    def __init__(self, num_buckets, num_hashes=1, learning_rate=0.01, seed=0, initial_interval=0.0,
                 bias_correction=False, **kwargs):
        super().__init__(**kwargs)
        if num_buckets < 1 or num_hashes < 1:
            raise ValueError(f'need num_buckets, num_hashes ≥ 1; got {num_buckets}, {num_hashes}')
        if not 0 < learning_rate <= 1:
            raise ValueError(f'learning_rate must be in (0, 1], got {learning_rate}')
        if initial_interval < 0 or (bias_correction and initial_interval):
            raise ValueError(f'initial_interval must be ≥ 0, and 0 with bias_correction; got {initial_interval}')
        self.bias_correction = bool(bias_correction)
        self.num_buckets = int(num_buckets)
        self.num_hashes = int(num_hashes)
        self.learning_rate = float(learning_rate)
        self.seed = int(seed)
        self.initial_interval = float(initial_interval)
        rng = np.random.default_rng(self.seed)
        coefficients = np.stack([rng.integers(1, PRIME, size=self.num_hashes),
                                 rng.integers(0, PRIME, size=self.num_hashes)], axis=1).astype(np.int64)
        shape = (self.num_hashes, self.num_buckets)
        self.hash_coefficients = self.add_weight(
            name='hash_coefficients', shape=coefficients.shape, dtype=tf.int64, trainable=False,
            initializer=tf.keras.initializers.Constant(coefficients))
        self.step = self.add_weight(name='step', shape=(), dtype=tf.int64, trainable=False, initializer='zeros')
        self.last_seen = self.add_weight(name='last_seen', shape=shape, dtype=tf.int64, trainable=False,
                                         initializer='zeros')
        self.interval = self.add_weight(name='interval', shape=shape, dtype=tf.float32, trainable=False,
                                        initializer=tf.keras.initializers.Constant(self.initial_interval))
        self.sightings = self.add_weight(name='sightings', shape=shape, dtype=tf.float32, trainable=False,
                                         initializer='zeros')

    def buckets(self, ids):
        """h_i(ids) for each hash: ``[m, N]`` int64, for flat int64 ids ``[N]``."""
        x = tf.math.floormod(tf.cast(ids, tf.int64), PRIME)[tf.newaxis, :]
        a, b = self.hash_coefficients[:, 0:1], self.hash_coefficients[:, 1:2]
        return tf.math.floormod(tf.math.floormod(a * x + b, PRIME), self.num_buckets)

    def update(self, ids):
        """Step t ← t + 1 on the batch's ids: B and A of every distinct (hash, bucket) they fall into."""
        ids = tf.reshape(tf.cast(ids, tf.int64), [-1])
        t = tf.convert_to_tensor(self.step.assign_add(1))
        rows = self.buckets(ids) + tf.range(self.num_hashes, dtype=tf.int64)[:, tf.newaxis] * self.num_buckets
        cells, _ = tf.unique(tf.reshape(rows, [-1]))                        # distinct (hash, bucket), flattened
        indices = tf.stack([cells // self.num_buckets, cells % self.num_buckets], axis=1)
        gaps = tf.cast(t - tf.gather_nd(self.last_seen, indices), tf.float32)
        intervals = (1.0 - self.learning_rate) * tf.gather_nd(self.interval, indices) + self.learning_rate * gaps
        return tf.group(self.interval.scatter_nd_update(indices, intervals),
                        self.last_seen.scatter_nd_update(indices, tf.fill(tf.shape(cells), t)),
                        self.sightings.scatter_nd_add(indices, tf.ones(tf.shape(cells), tf.float32)))

    def call(self, ids):
        ids = tf.convert_to_tensor(ids)
        flat = tf.reshape(tf.cast(ids, tf.int64), [-1])
        buckets = self.buckets(flat)
        intervals = tf.gather(self.interval, buckets, batch_dims=1)   # [m, N]
        if self.bias_correction:
            seen = tf.gather(self.sightings, buckets, batch_dims=1)
            intervals /= tf.maximum(1.0 - tf.pow(1.0 - self.learning_rate, seen), 1e-12)
        probability = 1.0 / tf.maximum(tf.reduce_max(intervals, axis=0), 1.0)
        return tf.reshape(probability, tf.shape(ids))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), 'num_buckets': self.num_buckets, 'num_hashes': self.num_hashes,
                'learning_rate': self.learning_rate, 'seed': self.seed, 'initial_interval': self.initial_interval,
                'bias_correction': self.bias_correction}


def popularity(num_items, switched=False):
    """The simulation's item distribution: q_i ∝ i² for i = 0 … M − 1, or ∝ (M − 1 − i)² after the switch."""
    weights = np.arange(num_items, dtype=np.float64) ** 2
    q = weights[::-1] if switched else weights
    return q / q.sum()


def sample_batches(rng, q, batch_size, num_steps):
    """``[num_steps, batch_size]`` int64: each row |B| distinct items drawn without replacement with inclusion
    probability exactly p_i = |B| · q_i (systematic sampling over a fresh random order of the items each step; the
    paper's target p_i = |B| q_i is only exact for such a design: successive draws without replacement, as
    ``numpy.random.Generator.choice(replace=False)``, give the popular items less than |B| q_i; measured at M = 1000,
    |B| = 128, q_i ∝ i²: 0.339 for the top item against |B| q = 0.384, and an error floor of 0.027 from that alone).
    Needs |B| q_i ≤ 1."""
    inclusion = batch_size * np.asarray(q, dtype=np.float64)
    if inclusion.max() > 1.0 + 1e-9:
        raise ValueError(f'|B| q_i = {inclusion.max():.3f} > 1: an item cannot be in a batch more than once')
    num_items = len(inclusion)
    order = np.argsort(rng.random((num_steps, num_items)), axis=1)
    cumulative = np.cumsum(inclusion[order], axis=1)                          # item k's interval (c_{k-1}, c_k]
    points = rng.random((num_steps, 1)) + np.arange(batch_size)               # u, u + 1, …, u + |B| − 1
    offsets = np.arange(num_steps)[:, None] * (batch_size + 1.0)              # rows apart, so one sorted array
    found = np.searchsorted((cumulative + offsets).ravel(), (points + offsets).ravel(), side='left')
    found = np.minimum(found.reshape(num_steps, batch_size) - np.arange(num_steps)[:, None] * num_items,
                       num_items - 1)
    return np.take_along_axis(order, found, axis=1).astype(np.int64)


def estimation_error(estimate, truth, batch_size):
    """The paper's error (§6.1): 1/(2|B|) Σ_i |p̂_i − p_i|, an absolute (not relative) L1 distance, i.e. the total
    variation between q̂ = p̂/|B| and q."""
    return float(np.abs(np.asarray(estimate, np.float64) - truth).sum() / (2.0 * batch_size))


def simulate(num_items=1000, batch_size=128, num_steps=20000, switch_step=None, num_buckets=5000, num_hashes=1,
             learning_rate=0.01, initial_interval=100.0, eval_every=100, seed=0, item_ids='random'):
    """The paper's simulation (§6.1): M items, |B| a step drawn without replacement from q_i ∝ i² for steps
    1 … ``switch_step`` (default ``num_steps // 2``), then from q_i ∝ (M − 1 − i)²; the estimator (A at 0, B at
    ``initial_interval``) sees each batch; every ``eval_every`` steps, at the switch and at the end, the error
    1/(2|B|) Σ_i |p̂_i − p_i| against p_i = |B| q_i of the distribution of that step.

    Defaults are the paper's (M = 1000, |B| = 128, H = 5000, B starts at 100) except ``num_steps`` (the paper
    switches at step 10000 and does not give the total: 2 × 10000 here) and α (its simulation's values are not in
    the text; 0.01 is its models' value).

    ``item_ids``: the id the estimator sees for item i. ``'random'`` (default): M distinct ids drawn uniformly from
    [0, 2^31 − 1) with ``seed``, so that the hashes collide as random hashing would (the collisions the paper's
    error floor and its multiple hashings are about). ``'index'``: i itself; beware that the linear hash of
    consecutive ids is a lattice that spreads them evenly, with no collision at all for M ≤ H (measured: ids
    0 … 999 into 1250 or 5000 buckets), so that m changes nothing there.

    Returns ``{'steps': int array, 'errors': float array, 'switch_step': int}``.
    """
    switch = num_steps // 2 if switch_step is None else int(switch_step)
    if item_ids not in ('random', 'index'):
        raise ValueError(f"item_ids must be 'random' or 'index', got {item_ids!r}")
    rng = np.random.default_rng([2019, seed])     # a stream apart from the hashes' default_rng(seed)
    ids = (rng.choice(PRIME, size=num_items, replace=False) if item_ids == 'random'
           else np.arange(num_items)).astype(np.int64)
    before, after = popularity(num_items), popularity(num_items, switched=True)
    estimator = StreamingFrequencyEstimator(num_buckets, num_hashes, learning_rate, seed=seed,
                                            initial_interval=initial_interval)
    id_table = tf.constant(ids)

    @tf.function(input_signature=[tf.TensorSpec([None, batch_size], tf.int64)])
    def advance(batches):
        for k in tf.range(tf.shape(batches)[0]):
            estimator.update(tf.gather(id_table, batches[k]))
        return estimator(id_table)

    checkpoints = sorted(set(range(eval_every, num_steps + 1, eval_every)) | {num_steps} |
                         ({switch} if 0 < switch < num_steps else set()))
    steps, errors, done = [], [], 0
    for checkpoint in checkpoints:
        q = before if checkpoint <= switch else after
        chunk = []
        for start, stop, dist in ((done, min(checkpoint, switch), before), (max(done, switch), checkpoint, after)):
            if stop > start:
                chunk.append(sample_batches(rng, dist, batch_size, stop - start))
        estimate = advance(tf.constant(np.concatenate(chunk)))
        steps.append(checkpoint)
        errors.append(estimation_error(estimate.numpy(), batch_size * q, batch_size))
        done = checkpoint
    return {'steps': np.array(steps), 'errors': np.array(errors), 'switch_step': switch}

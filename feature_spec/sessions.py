"""DSIN's session division (Feng et al., *Deep Session Interest Network for Click-Through Rate Prediction*,
IJCAI 2019, §4.1), as Transform computes it from the spec's ``behavior.sessions``
(:class:`~feature_spec.spec.Sessions`).

The behaviours of a row, oldest first, with times t_1 ≤ … ≤ t_n: step j starts a new session when j = 1 or
t_j − t_{j−1} > ``gap_seconds`` (30 minutes in the paper). Sessions are counted from the newest (rank 0); the K =
``max_sessions`` newest sessions are kept, and of each its T = ``max_length`` newest behaviours. The kept sessions
are laid out oldest first in K slots of T steps (the row's session k at steps k·T … k·T + T − 1, its behaviours
oldest first), unused slots and steps padded with 0, so a row is ``[K · T]``; the number of kept behaviours of each
slot is the ``[K]`` session length (0 for an unused slot).
"""

import tensorflow as tf


class SessionLayout:
    """Where each behaviour of a ``[B, L]`` dense history goes in the ``[B, K · T]`` session layout.

    Args:
        times: ``[B, L]`` int64 behaviour times, oldest first, valid for the first ``lengths`` steps.
        lengths: ``[B]`` valid steps per row.
        gap_seconds, max_sessions, max_length: the division (K = ``max_sessions``, T = ``max_length``).
    """

    def __init__(self, times, lengths, gap_seconds: int, max_sessions: int, max_length: int):
        self.max_sessions, self.max_length = max_sessions, max_length
        steps = tf.shape(times)[1]
        valid = tf.sequence_mask(lengths, steps)
        gaps = times[:, 1:] - times[:, :-1]
        starts = tf.concat([tf.ones_like(times[:, :1], tf.bool), gaps > gap_seconds], axis=1)
        session = tf.cumsum(tf.cast(starts & valid, tf.int64), axis=1) - 1                      # 0 = oldest
        sessions = tf.reduce_max(tf.where(valid, session, -1), axis=1) + 1                       # per row
        rank = sessions[:, tf.newaxis] - 1 - session                                             # 0 = newest
        same = tf.equal(session[:, :, tf.newaxis], session[:, tf.newaxis, :]) & valid[:, tf.newaxis, :]
        later = tf.range(steps)[tf.newaxis, :] > tf.range(steps)[:, tf.newaxis]                   # [j, j'] j' > j
        from_end = tf.reduce_sum(tf.cast(same & later[tf.newaxis], tf.int64), axis=2)            # newer in session
        size = tf.reduce_sum(tf.cast(same, tf.int64), axis=2)                                    # its session's size
        self.keep = valid & (rank < max_sessions) & (from_end < max_length)
        kept_sessions = tf.minimum(sessions, max_sessions)
        slot = kept_sessions[:, tf.newaxis] - 1 - rank
        position = tf.minimum(size, max_length) - 1 - from_end
        self.index = slot * max_length + position                                                # in [0, K·T)
        rows = tf.range(tf.shape(times, out_type=tf.int64)[0])[:, tf.newaxis] + tf.zeros_like(session)
        self.session_lengths = tf.math.unsorted_segment_sum(
            tf.cast(self.keep, tf.int64), tf.where(self.keep, rows * max_sessions + slot, 0),
            tf.shape(times, out_type=tf.int64)[0] * max_sessions)
        self.session_lengths = tf.reshape(self.session_lengths, [-1, max_sessions])
        self._rows = rows

    def apply(self, values):
        """``[B, L]`` values of the same history → ``[B, K · T]`` in the session layout (0 where unused)."""
        indices = tf.stack([tf.boolean_mask(self._rows, self.keep), tf.boolean_mask(self.index, self.keep)], axis=1)
        shape = tf.stack([tf.shape(values, out_type=tf.int64)[0], self.max_sessions * self.max_length])
        return tf.scatter_nd(indices, tf.boolean_mask(values, self.keep), shape)

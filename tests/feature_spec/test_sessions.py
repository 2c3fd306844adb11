"""DSIN's session division in Transform against a direct, loop-based division."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402

from feature_spec.sessions import SessionLayout  # noqa: E402

GAP, K, T = 100, 2, 3


def _divide(times, length):
    """Sessions of one row, oldest first, each the list of its step indices."""
    sessions = []
    for j in range(length):
        if j == 0 or times[j] - times[j - 1] > GAP:
            sessions.append([])
        sessions[-1].append(j)
    return sessions


def _expected(times, lengths, values):
    layout = np.zeros((len(lengths), K * T), np.int64)
    session_lengths = np.zeros((len(lengths), K), np.int64)
    for row, length in enumerate(lengths):
        kept = [steps[-T:] for steps in _divide(times[row], length)[-K:]]   # newest K sessions, newest T steps
        for slot, steps in enumerate(kept):
            session_lengths[row, slot] = len(steps)
            layout[row, slot * T:slot * T + len(steps)] = values[row, steps]
    return layout, session_lengths


def test_layout_equals_a_loop_over_sessions():
    rng = np.random.default_rng(0)
    rows, steps = 40, 9
    gaps = np.where(rng.random((rows, steps)) < 0.35, rng.integers(101, 5000, (rows, steps)),
                    rng.integers(0, 101, (rows, steps)))
    times = np.cumsum(gaps, axis=1).astype(np.int64)
    lengths = rng.integers(0, steps + 1, rows)
    lengths[:3] = [0, 1, steps]
    values = rng.integers(1, 1000, (rows, steps)).astype(np.int64)
    layout = SessionLayout(times, lengths, GAP, K, T)
    expected_layout, expected_lengths = _expected(times, lengths, values)
    np.testing.assert_array_equal(layout.session_lengths, expected_lengths)
    np.testing.assert_array_equal(layout.apply(values), expected_layout)
    assert (expected_lengths == T).any() and ((expected_lengths > 0) & (expected_lengths < T)).any()
    assert (expected_lengths[:, 1] == 0).any() and (expected_lengths.sum(axis=1) < lengths).any()  # truncation


def test_a_gap_of_exactly_the_threshold_stays_in_the_session():
    times = np.array([[0, GAP, 2 * GAP + 1, 2 * GAP + 2]], np.int64)
    layout = SessionLayout(times, np.array([4]), GAP, K, T)
    np.testing.assert_array_equal(layout.session_lengths, [[2, 2]])
    np.testing.assert_array_equal(layout.apply(np.array([[1, 2, 3, 4]], np.int64)), [[1, 2, 0, 3, 4, 0]])

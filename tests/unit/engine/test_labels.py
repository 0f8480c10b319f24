"""ZigZag labels: first threshold move wins, incomplete look-ahead is marked, no vectorisation slips."""

from __future__ import annotations

import numpy as np

from agent_pipeline.engine.labels import BUY, HOLD, INCOMPLETE, SELL, zigzag_labels


def reference_labels(close: np.ndarray, threshold: float, lookahead: int) -> np.ndarray:
    """The definition, one bar at a time."""
    labels = np.full(len(close), INCOMPLETE)
    for t in range(len(close) - lookahead):
        labels[t] = HOLD
        for price in close[t + 1 : t + lookahead + 1]:
            if price >= close[t] * (1 + threshold):
                labels[t] = BUY
                break
            if price <= close[t] * (1 - threshold):
                labels[t] = SELL
                break
    return labels


def test_hand_worked_series_gets_expected_labels():
    close = np.array([100, 101, 102, 99, 98, 100, 103.0])
    assert zigzag_labels(close, 0.02, 2).tolist() == [BUY, HOLD, SELL, HOLD, BUY, INCOMPLETE, INCOMPLETE]


def test_first_move_wins_when_both_thresholds_are_hit():
    up_first = np.array([100, 102, 97, 100.0])
    down_first = np.array([100, 97, 102, 100.0])
    assert zigzag_labels(up_first, 0.02, 3)[0] == BUY
    assert zigzag_labels(down_first, 0.02, 3)[0] == SELL


def test_move_beyond_lookahead_is_hold():
    close = np.array([100, 100, 100, 105, 100, 100.0])
    assert zigzag_labels(close, 0.02, 2)[0] == HOLD


def test_last_lookahead_bars_are_incomplete_and_dtype_is_int64():
    labels = zigzag_labels(np.linspace(100, 120, 50), 0.01, 7)
    assert labels.dtype == np.int64
    assert (labels[-7:] == INCOMPLETE).all()
    assert (labels[:-7] >= 0).all()


def test_series_shorter_than_lookahead_is_all_incomplete():
    assert (zigzag_labels(np.array([1.0, 2.0, 3.0]), 0.01, 5) == INCOMPLETE).all()


def test_vectorised_labels_equal_the_definition_on_real_prices(eurusd):
    close = eurusd["close"].to_numpy()[:1500]
    for threshold, lookahead in ((0.002, 5), (0.005, 20), (0.01, 1)):
        expected = reference_labels(close, threshold, lookahead)
        np.testing.assert_array_equal(zigzag_labels(close, threshold, lookahead), expected)


def test_without_hold_a_window_that_touches_no_threshold_takes_the_direction_of_its_last_close() -> None:
    # Given closes that never move 5% within two bars
    close = np.array([100.0, 101.0, 100.5, 99.0, 99.5, 100.0])
    # Then with HOLD every complete bar is HOLD, and without it each takes the sign of close[t + 2] - close[t]
    assert zigzag_labels(close, 0.05, 2).tolist() == [HOLD, HOLD, HOLD, HOLD, INCOMPLETE, INCOMPLETE]
    assert zigzag_labels(close, 0.05, 2, hold=False).tolist() == [BUY, SELL, SELL, BUY, INCOMPLETE, INCOMPLETE]
    # and a threshold that is touched still decides first
    assert zigzag_labels(np.array([100.0, 97.0, 110.0, 110.0]), 0.02, 2, hold=False)[0] == SELL

"""ZigZag labels: which way price moves by a threshold first within a look-ahead window."""

from __future__ import annotations

import numpy as np

# Label encoding shared by dataset, trainer and backtester.
SELL, HOLD, BUY = 0, 1, 2
CLASS_NAMES = ("SELL", "HOLD", "BUY")

# Label of the last `lookahead` bars, whose window runs past the data; dataset assembly drops them.
INCOMPLETE = -1


def zigzag_labels(close: np.ndarray, threshold: float, lookahead: int, *, hold: bool = True) -> np.ndarray:
    """Label each bar by the first threshold move among the next `lookahead` closes.

    BUY when some close within bars t+1 .. t+lookahead is >= close[t] * (1 + threshold) before any close is
    <= close[t] * (1 - threshold); SELL for the mirror case; HOLD when neither happens. Only closes are
    used (not highs/lows), so a label is exactly what a close-to-close trader could have captured.

    With `hold=False` there is no HOLD: a bar whose window touches neither threshold takes the direction of the
    window's last close (BUY when close[t + lookahead] >= close[t], else SELL). On a series of constant volatility
    HOLD cannot be predicted, and a third class the model cannot learn keeps its class-weighted loss above the
    training gate's 0.8 whatever the edge (issue 14); two classes suit a directional edge.

    Args:
        close: closing prices, oldest first.
        threshold: the move as a fraction (0.01 = 1%).
        lookahead: how many bars ahead to look.
        hold: False labels every complete bar BUY or SELL.

    Returns:
        int64 labels SELL (0) / HOLD (1) / BUY (2), and INCOMPLETE (-1) for the last `lookahead` bars.
    """
    close = np.asarray(close, dtype=float)
    n = len(close)
    never = lookahead + 1
    first_up = np.full(n, never)
    first_down = np.full(n, never)
    for offset in range(1, min(lookahead, n - 1) + 1):
        now, ahead = close[:-offset], close[offset:]
        hit_up = (ahead >= now * (1 + threshold)) & (first_up[:-offset] == never)
        hit_down = (ahead <= now * (1 - threshold)) & (first_down[:-offset] == never)
        first_up[:-offset][hit_up] = offset
        first_down[:-offset][hit_down] = offset
    labels = np.full(n, HOLD, dtype=np.int64)
    labels[first_up < first_down] = BUY
    labels[first_down < first_up] = SELL
    if not hold and n > lookahead:
        undecided = np.flatnonzero(labels[: n - lookahead] == HOLD)
        rose = close[undecided + lookahead] >= close[undecided]
        labels[undecided] = np.where(rose, BUY, SELL)
    labels[max(n - lookahead, 0) :] = INCOMPLETE
    return labels

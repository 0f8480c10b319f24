"""A user's strategy on a close-only series is refused before its cycle starts, naming the indicator."""

from __future__ import annotations

import yaml

from agent_pipeline.pipeline.user_strategy import problems

DOCUMENT = {
    "name": "user_atr",
    "symbol": "SPX.AAPL",
    "timeframe": "1d",
    "indicators": [{"type": "atr", "period": 14}, {"type": "rsi", "period": 14}],
    "fuzzy_sets": {
        "atr_14": {"low": {"type": "triangular", "parameters": [0, 0, 1]}},
        "rsi_14": {"low": {"type": "triangular", "parameters": [0, 0, 30]}},
    },
    "labels": {"zigzag_threshold": 0.02, "lookahead": 5},
}


def test_an_indicator_that_needs_highs_is_a_problem_only_on_a_close_only_series() -> None:
    text = yaml.safe_dump(DOCUMENT)
    pairs = {("SPX.AAPL", "1d")}
    assert problems(text, pairs, close_only=pairs) == [
        "indicators[0]: atr needs high and low, and SPX.AAPL 1d is close-only"
    ]
    assert problems(text, pairs) == []  # the same series with highs and lows

"""A universe strategy the universe tests share: short RSI and rate of change, two-class labels over 2 bars.

It suits a planted one-day reversal on every symbol, trains in a few seconds, and uses close-based indicators only,
so it is valid on a close-only universe.
"""

from __future__ import annotations

from typing import Any


def pooled_strategy(universe: str, **overrides: Any) -> dict[str, Any]:
    """The strategy document on `universe`; keys in `overrides` replace its own."""
    document: dict[str, Any] = {
        "name": "pooled",
        "universe": universe,
        "timeframe": "1d",
        "indicators": [{"type": "rsi", "period": 2}, {"type": "roc", "period": 2}],
        "fuzzy_sets": {
            "rsi_2": {
                "low": {"type": "trapezoidal", "parameters": [0, 0, 30, 50]},
                "high": {"type": "trapezoidal", "parameters": [50, 70, 100, 100]},
            },
            "roc_2": {
                "up": {"type": "gaussian", "parameters": [1.5, 1.5]},
                "down": {"type": "gaussian", "parameters": [-1.5, 1.5]},
            },
        },
        "model": {"hidden_layers": [16]},
        "labels": {"zigzag_threshold": 0.002, "lookahead": 2, "hold": False},
        "training": {"epochs": 6, "batch_size": 256, "learning_rate": 0.005},
    }
    return document | overrides

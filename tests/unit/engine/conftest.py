"""Fixtures for the engine's data, feature, label and dataset tests: real bundled bars, small strategies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from agent_pipeline.engine.data import load_bars
from agent_pipeline.engine.strategy import Strategy, parse_strategy


def strategy_document(**overrides: Any) -> dict[str, Any]:
    """A valid strategy mapping on the bundled EURUSD 1h series; keys in `overrides` replace its own."""
    document: dict[str, Any] = {
        "name": "unit_demo",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "indicators": [{"type": "rsi", "period": 14}, {"type": "macd"}, {"type": "bollinger"}],
        "fuzzy_sets": {
            "rsi_14": {
                "low": {"type": "triangular", "parameters": [0, 0, 30]},
                "high": {"type": "triangular", "parameters": [70, 100, 100]},
            },
            "macd": {"flat": {"type": "gaussian", "parameters": [0, 0.0005]}},
            "bollinger_20": {"inside": {"type": "trapezoidal", "parameters": [-0.2, 0, 1, 1.2]}},
        },
        "labels": {"zigzag_threshold": 0.003, "lookahead": 10},
    }
    document.update(overrides)
    return document


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    return load_bars("EURUSD", "1h")


@pytest.fixture(scope="session")
def sp500() -> pd.DataFrame:
    return load_bars("SP500", "1d")


@pytest.fixture(scope="session")
def make_strategy() -> Callable[..., Strategy]:
    return lambda **overrides: parse_strategy(strategy_document(**overrides))


@pytest.fixture(scope="session")
def document() -> Callable[..., dict[str, Any]]:
    """`strategy_document` as a fixture (test modules here are not a package, so they cannot import it)."""
    return strategy_document

"""The optimiser's space on close-only series (issue 24): it draws only the indicators that read the close alone."""

from __future__ import annotations

import optuna
import pytest

from agent_pipeline.engine.data import load_bars
from agent_pipeline.engine.strategy import CLOSE_INDICATORS, parse_strategy
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.llm.space import CLOSE_ONLY_INDICATORS, INDICATORS, build_document, usable_indicators


@pytest.mark.parametrize(("symbol", "close_only"), [("SP500_20.MSFT", True), ("SP500", False)])
def test_the_space_draws_close_based_indicators_only_for_close_only_series(symbol: str, close_only: bool) -> None:
    # Given 60 random draws over a close-only series (the bundled SP500_20's MSFT) or an OHLCV one
    bars = load_bars(symbol, "1d").iloc[:2000]
    series = DataSeries(symbol, "1d", str(bars.index[0]), str(bars.index[-1]), len(bars))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    drawn = set()
    for _ in range(60):
        document = build_document(study.ask(), series, bars, prefix="random")
        drawn |= {indicator["type"] for indicator in document["indicators"]}
        pair = (symbol, "1d")
        parse_strategy(document, available=[pair], close_only=[pair] if close_only else [])  # valid as drawn
    # Then a close-only series gets only close-based ones (all four of them), an OHLCV series every kind
    assert drawn == (set(CLOSE_ONLY_INDICATORS) if close_only else set(INDICATORS))
    assert usable_indicators(bars) == (CLOSE_ONLY_INDICATORS if close_only else INDICATORS)


def test_the_close_only_draw_is_the_spaces_close_based_indicators() -> None:
    assert CLOSE_ONLY_INDICATORS == ("rsi", "roc", "sma", "ema")
    assert set(CLOSE_ONLY_INDICATORS) == set(INDICATORS) & set(CLOSE_INDICATORS)

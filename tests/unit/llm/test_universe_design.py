"""Designing for a universe (issue 24): one study per universe, a `universe:` document, cut points pooled per symbol.

The universe is imported into a private data folder from planted closes; the studies live in a SQLite file per
test. No training: the designs are read, not run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.config import Settings, get_settings, reset_settings
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.engine.universe import describe, get_universe, import_universe
from agent_pipeline.llm import DataSeries, ResearchMemory, get_designer
from agent_pipeline.llm.claude import OutputRejected
from agent_pipeline.llm.designers.anthropic import _validate, build_prompt
from agent_pipeline.llm.space import CLOSE_ONLY_INDICATORS, universe_research_bars, volatility
from agent_pipeline.llm.study import load_study
from tests.universes import pooled_strategy

SYMBOLS, BARS = 3, 600


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A private data folder holding the universe DEMO (three planted close-only series) and a SQLite file."""
    frames = [synth_bars("reversal", 2.0, seed, BARS)[0] for seed in range(1, SYMBOLS + 1)]
    # Prices of very different levels: a return taken from one symbol's close to the next one's would be huge.
    closes = pd.DataFrame({f"S{i:02d}": frame["close"] * 10**i for i, frame in enumerate(frames)})
    closes.index = closes.index.strftime("%Y-%m-%d")
    closes.to_csv(tmp_path / "closes.csv", index_label="date")
    monkeypatch.setenv("KTRDR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ktrdr.db'}")
    reset_settings()
    config = get_settings()
    import_universe(tmp_path / "closes.csv", name="demo", timeframe="1d", data_dir=config.data_dir)
    return config


def universe_entry(config: Settings) -> DataSeries:
    info = describe(get_universe("DEMO", config.data_dir), config.data_dir)
    return DataSeries(
        "DEMO", "1d", str(info.common_start), str(info.common_end), info.common_bars,
        symbols=tuple(info.symbols), close_only=info.close_only,
    )  # fmt: skip


@pytest.mark.parametrize("portfolio", [None, "rank"])
def test_the_offline_designer_writes_a_universe_strategy_in_the_universes_own_study(
    settings: Settings, portfolio: str | None
) -> None:
    # Given the universe as the only series of the catalogue
    entry = universe_entry(settings)
    # When the offline designer designs twice for it
    designer = get_designer(settings, "offline")
    outcomes = [
        designer.design(memory=ResearchMemory(), catalogue=[entry], symbol="DEMO", timeframe="1d", portfolio=portfolio)
        for _ in range(2)
    ]
    # Then each strategy names the universe and the portfolio asked for, with close-based indicators only
    for outcome in outcomes:
        strategy = outcome.strategy
        assert strategy.universe == "DEMO" and strategy.symbol == "DEMO"
        assert "symbol" not in outcome.document and outcome.document["universe"] == "DEMO"
        assert strategy.portfolio is not None and strategy.portfolio.mode == (portfolio or "timing")
        assert {indicator.type for indicator in strategy.indicators} <= set(CLOSE_ONLY_INDICATORS)
    # And both are trials of the universe's one study
    trials = load_study("DEMO", "1d", url=settings.database_url).get_trials(deepcopy=False)
    assert [outcome.study_trial for outcome in outcomes] == [t.number for t in trials] == [0, 1]


def test_a_universes_volatility_pools_each_symbols_own_returns(settings: Settings) -> None:
    # Given the universe's research bars, one frame per symbol at price levels 1, 10 and 100 apart
    frames = universe_research_bars("DEMO", "1d", settings.data_dir, settings.lockbox_fraction)
    assert len(frames) == SYMBOLS
    # When its volatility is taken
    found = volatility(frames)
    # Then it is the spread of every symbol's own log returns pooled: no return spans two symbols
    own = np.concatenate([np.diff(np.log(frame["close"].to_numpy())) for frame in frames])
    assert found == pytest.approx(np.std(own, ddof=1), rel=1e-9)
    assert found < 0.05  # a return from one symbol's close to another's would be ln(10) = 2.3


def test_claude_is_asked_for_the_universe_and_held_to_it(settings: Settings) -> None:
    # Given the universe as the catalogue
    entry = universe_entry(settings)
    # When the prompt is built for a rank portfolio
    prompt = build_prompt(memory=ResearchMemory(), catalogue=[entry], symbol="DEMO", timeframe="1d", portfolio="rank")
    # Then it says it is a universe, how it trades, and that its series are close-only
    assert "a universe of 3 symbols (DEMO.S00, DEMO.S01, DEMO.S02)" in prompt
    assert "Name `universe: DEMO` instead of `symbol:` and set `portfolio: {mode: rank}`" in prompt
    assert "Its series are close-only" in prompt
    # And a universe document is accepted; one on another series, or with high/low indicators, is refused
    strategy, _ = _validate(pooled_strategy("DEMO", portfolio={"mode": "rank"}), [entry], "rank")
    assert strategy.universe == "DEMO"
    with pytest.raises(OutputRejected) as other_mode:  # held to the mode asked for; no portfolio is timing
        _validate(pooled_strategy("DEMO"), [entry], "rank")
    assert "portfolio.mode: the request is rank, not timing" in str(other_mode.value)
    with pytest.raises(OutputRejected) as refused:
        _validate(pooled_strategy("DEMO") | {"universe": None, "symbol": "EURUSD"}, [entry])
    assert "no data for EURUSD 1d" in str(refused.value)
    atr = pooled_strategy("DEMO", indicators=[{"type": "rsi", "period": 2}, {"type": "atr", "period": 14}])
    atr["fuzzy_sets"] = {"rsi_2": atr["fuzzy_sets"]["rsi_2"]}
    with pytest.raises(OutputRejected) as close_only:  # Claude is asked to repair it
        _validate(atr, [entry])
    assert "atr needs high and low, and DEMO 1d is close-only" in str(close_only.value)


def test_designs_read_a_series_only_up_to_the_end_its_first_cycle_fixed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the universe, whose first cycle fixed its research end 100 common dates before its last
    from agent_pipeline.llm.space import research_sample
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.series import fix_series_end

    whole = universe_research_bars("DEMO", "1d", settings.data_dir, settings.lockbox_fraction)
    store = get_store(settings.database_url)
    store.upgrade()
    dates = describe(get_universe("DEMO", settings.data_dir), settings.data_dir)
    end = str(pd.Timestamp(dates.common_end) - pd.Timedelta(days=150))
    fix_series_end(store, symbol="DEMO", timeframe="1d", end=end, cycle_id="op_first")
    # When a design reads its research sample
    frames = research_sample("DEMO", "1d", True, settings)
    # Then the sample is the research period of the bars up to that end: shorter, and never past the end
    assert all(frame.index[-1] < pd.Timestamp(end) for frame in frames)
    assert len(frames[0]) < len(whole[0])

"""Calibration series stay apart (issue 23): the designer's memory and the optimiser's study of one series never
hold another's cycles or trials, so neither a trial count nor a hint crosses from one planted series to the next.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.engine.synth import write_synth
from agent_pipeline.llm import ResearchMemory, get_designer
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.llm.study import load_study, tell_cycle
from agent_pipeline.pipeline.calibrate import SeriesSpec
from agent_pipeline.store.operations import Operation, OperationsStore, get_store
from tests.fake_anthropic import (
    FakeAnthropic,
    fake_anthropic,  # noqa: F401 - a fixture, used by name
)

A = SeriesSpec("trend", 1.5, 101, "anthropic").symbol
B = SeriesSpec("reversal", 2.0, 102, "anthropic").symbol


def strategy(name: str, symbol: str) -> dict[str, object]:
    return {
        "name": name, "symbol": symbol, "timeframe": "1d", "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 20, 40]}}},
    }  # fmt: skip


def finished_cycle(store: OperationsStore, symbol: str, name: str, folder: Path, **meta: object) -> Operation:
    """A completed research cycle on `symbol` whose strategy (saved under `folder`) is called `name`."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(strategy(name, symbol)))
    metadata = {"symbol": symbol, "timeframe": "1d", "strategy_name": name, "strategy_path": str(path), **meta}
    row = store.create_cycle(max_active=100, metadata=metadata)
    store.start(row.operation_id)
    store.complete(row.operation_id, result_summary={"discovery": False})
    return store.get(row.operation_id)


def test_the_claude_designer_of_one_series_is_told_nothing_of_another_series(
    fake_anthropic: FakeAnthropic,  # noqa: F811 - the fixture imported above
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_pipeline.tasks.design import design

    # Given two calibration series, each with a finished cycle whose strategy name only it knows
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-isolation")
    reset_settings()
    settings, store = get_settings(), get_store(sqlite_url)
    store.upgrade()
    assert settings.data_dir is not None
    for symbol, kind in ((A, "trend"), (B, "reversal")):
        write_synth(kind, 1.5, 1, symbol=symbol, timeframe="1d", data_dir=settings.data_dir, bars=1500)
    for symbol, name in ((A, "own_series_sma"), (B, "other_series_rsi")):
        backtest = {"sharpe_ratio": 0.9, "num_trades": 40}
        tell_cycle(finished_cycle(store, symbol, name, tmp_path, designer="anthropic", backtest_result=backtest))
    # When a cycle on series A asks Claude for a design
    fake_anthropic.reply_tool_use("submit_strategy", strategy("next_on_a", A))
    cycle = store.create_cycle(max_active=100, metadata={})
    from agent_pipeline.tasks.design import research_memory as rm

    print("BEFORE", [c.strategy_name for c in rm(store, exclude=cycle.operation_id).cycles], rm(store).summary()[:300])
    design.run({"cycle_id": cycle.operation_id, "designer": "anthropic", "symbol": A, "timeframe": "1d"})
    # Then its prompt holds A's own past cycle and study, and nothing of B: not its cycle, its trials nor its name
    prompt = json.dumps(fake_anthropic.bodies[0]["messages"])
    from agent_pipeline.tasks.design import research_memory

    print(fake_anthropic.bodies[0]["messages"][0]["content"][-700:])
    print(
        [(c.strategy_name, c.status) for c in research_memory(store).cycles],
        [(o.operation_id, o.metadata.get("symbol"), o.status) for o in store.list(limit=50)],
    )
    assert "own_series_sma" in prompt and f"{A} 1d: 1 trials" in prompt
    assert "other_series_rsi" not in prompt
    assert B not in prompt


def test_the_optimiser_study_of_one_series_never_holds_another_series_trials(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the offline designer asked in turn for designs on two series of one database
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    settings, store = get_settings(), get_store(sqlite_url)
    designer = get_designer(settings, "offline")
    assert settings.data_dir is not None
    for symbol, kind in ((A, "trend"), (B, "reversal")):
        write_synth(kind, 1.5, 1, symbol=symbol, timeframe="1d", data_dir=settings.data_dir, bars=1500)
    catalogue = [DataSeries(symbol, "1d", "1999-01-04", "2018-12-31", 5031) for symbol in (A, B)]
    cycles: dict[str, list[str]] = {A: [], B: []}
    for symbol in (A, B, A, B, B):
        outcome = designer.design(memory=ResearchMemory(), catalogue=catalogue, symbol=symbol, timeframe="1d")
        meta = {"designer": "offline", "symbol": symbol, "timeframe": "1d", "study_trial": outcome.study_trial}
        row = store.create_cycle(max_active=100, metadata=meta | {"backtest_result": {"sharpe_ratio": 0.5}})
        store.start(row.operation_id)
        store.complete(row.operation_id)
        # When each cycle's end tells its study
        tell_cycle(store.get(row.operation_id))
        cycles[symbol].append(row.operation_id)
    # Then each study holds its own series' trials only, numbered from 0: no trial count crosses
    for symbol in (A, B):
        trials = load_study(symbol, "1d", url=sqlite_url).get_trials()
        assert [t.user_attrs["cycle_id"] for t in trials] == cycles[symbol]
        assert [t.number for t in trials] == list(range(len(cycles[symbol])))

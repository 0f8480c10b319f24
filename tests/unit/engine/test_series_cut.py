"""A series' research and lockbox end fixed at a date (issue 27): bars appended after it are forward bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from agent_pipeline.engine import research
from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.data import load_bars, random_walk_bars, store_bars
from agent_pipeline.engine.replay import replay_block
from agent_pipeline.engine.series_cut import cut_at, cut_series, series_end, strategy_series_end, universes_with
from agent_pipeline.engine.universe import create_universe

DOCUMENT = {
    "name": "cut_demo", "symbol": "RW", "timeframe": "1d", "indicators": [{"type": "rsi", "period": 14}],
    "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 0, 50]},
                              "high": {"type": "triangular", "parameters": [50, 100, 100]}}},
    "model": {"type": "mlp", "hidden_layers": [8]}, "labels": {"zigzag_threshold": 0.02, "lookahead": 5},
    "training": {"epochs": 1, "batch_size": 64},
}  # fmt: skip


def walk(bars: int, seed: int, start: str = "1999-01-04") -> pd.DataFrame:
    frame = random_walk_bars(bars, seed=seed, start=start)
    return frame.set_index(pd.DatetimeIndex(frame.pop("timestamp"), name="date"))


def append_walk(folder: Path, bars: int) -> None:
    """`bars` more business days of bars after RW's end, stored as an append stores them."""
    stored = load_bars("RW", "1d", folder)
    extra = walk(bars, seed=9, start=str(stored.index[-1] + pd.offsets.BDay()))
    store_bars(pd.concat([stored, extra]), symbol="RW", timeframe="1d", data_dir=folder)


def test_cut_at_keeps_the_bars_up_to_the_end_and_none_leaves_the_series_whole() -> None:
    bars = walk(10, seed=1)
    end = str(bars.index[6])
    assert list(cut_at(bars, end).index) == list(bars.index[:7])
    assert cut_at(bars, None) is bars
    assert {name: len(frame) for name, frame in cut_series({"A": bars, "B": bars}, end).items()} == {"A": 7, "B": 7}


def test_after_an_append_a_cycle_cut_at_the_fixed_end_has_the_same_research_period_and_lockbox(tmp_path: Path) -> None:
    # Given a series, a strategy on it, and its end fixed by a first cycle, whose final model trades the lockbox
    store_bars(walk(900, seed=1), symbol="RW", timeframe="1d", data_dir=tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    end = strategy_series_end(path, tmp_path)
    evaluation = research.Evaluation(lockbox_fraction=0.2, folds=2, series_end=end)
    first = research.train_walk_forward(path, model_dir=tmp_path / "m1", evaluation=evaluation, data_dir=tmp_path)
    model = Path(first["model_path"])
    lockbox = research.trade_lockbox(path, model_path=model, evaluation=evaluation, data_dir=tmp_path)
    # When 150 bars are appended and a later cycle trains and trades with the same fixed end
    append_walk(tmp_path, 150)
    assert strategy_series_end(path, tmp_path) > end
    later = research.train_walk_forward(path, model_dir=tmp_path / "m2", evaluation=evaluation, data_dir=tmp_path)
    again = research.trade_lockbox(path, model_path=model, evaluation=evaluation, data_dir=tmp_path)
    # Then its research period and its lockbox are the same dates, and its replay record ends where the cut is
    assert later["walk_forward"]["research_start"] == first["walk_forward"]["research_start"]
    assert later["walk_forward"]["research_end"] == first["walk_forward"]["research_end"]
    assert (again["start"], again["end"], again["n_bars"]) == (lockbox["start"], lockbox["end"], lockbox["n_bars"])
    assert lockbox["end"] == end
    block = replay_block(
        path, data_dir=tmp_path, evaluation=evaluation, seed=7, batched=True, device="cpu", settings={}
    )
    assert (block["bars_end"], block["bars_count"]) == (end, 900)
    # And without the fixed end the append would have moved both (the failure this guards against)
    whole = research.Evaluation(lockbox_fraction=0.2, folds=2)
    moved = research.trade_lockbox(path, model_path=model, evaluation=whole, data_dir=tmp_path)
    assert moved["start"] > lockbox["start"] and moved["end"] > end


def appended_for_real(folder: Path, symbol: str, bars: int, seed: int = 9) -> pd.Timestamp:
    """`bars` more business days after the series' end, appended as `ktrdr data append` does (its range recorded);
    returns the series' last bar before them."""
    stored = load_bars(symbol, "1d", folder)
    extra = walk(bars, seed=seed, start=str(stored.index[-1] + pd.offsets.BDay()))
    path = folder.parent / f"{symbol}_new.csv"
    extra.to_csv(path, index_label="date")
    append_bars(FileBarSource(path), symbol=symbol, timeframe="1d", data_dir=folder)
    return stored.index[-1]


def test_an_end_fixed_after_an_append_is_the_last_bar_before_the_first_appended_one(tmp_path: Path) -> None:
    # Given a series appended to twice before any cycle fixed its end
    folder = tmp_path / "data"
    store_bars(walk(300, seed=1), symbol="RW", timeframe="1d", data_dir=folder)
    before = appended_for_real(folder, "RW", 20)
    appended_for_real(folder, "RW", 10, seed=10)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(DOCUMENT))
    # Then the end a first cycle fixes is the last bar the series had before its first append
    assert series_end("RW", "1d", folder) == str(before) == strategy_series_end(path, folder)
    assert len(load_bars("RW", "1d", folder)) == 330


def test_a_universe_end_stops_before_the_first_bar_appended_to_any_of_its_symbols(tmp_path: Path) -> None:
    # Given a universe of AA (300 bars) and BB (310 bars on the same dates), then 20 bars appended to AA, 10 to BB
    folder = tmp_path / "data"
    for seed, (symbol, bars) in enumerate([("AA", 300), ("BB", 310)], start=1):
        store_bars(walk(bars, seed=seed), symbol=symbol, timeframe="1d", data_dir=folder)
    create_universe("DUO", timeframe="1d", symbols=["AA", "BB"], data_dir=folder)
    before = appended_for_real(folder, "AA", 20)
    appended_for_real(folder, "BB", 10)
    # Then its end is the last common date before the earliest first appended bar of its symbols (AA's)
    assert series_end("DUO", "1d", folder, universe=True) == str(before)
    assert universes_with("aa", "1d", folder) == ["DUO"] and universes_with("AA", "1h", folder) == []

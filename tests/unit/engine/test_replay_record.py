"""Replay's plain parts (issue 25): the checksum of a cycle's research bars, its record, and the comparison."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from agent_pipeline.engine.data import load_bars, random_walk_bars, store_bars
from agent_pipeline.engine.replay import (
    CUDA_TOLERANCE,
    bars_checksum,
    compare,
    replay_block,
    research_bars,
    same_figure,
    series_bars,
    span,
)
from agent_pipeline.engine.research import Evaluation
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.store.record import ReplayRecord

FRACTION = 0.2


def walk(bars: int, seed: int, start: str = "1999-01-04") -> pd.DataFrame:
    """Business-day random-walk bars indexed by their dates."""
    frame = random_walk_bars(bars, seed=seed, start=start)
    return frame.set_index(pd.DatetimeIndex(frame.pop("timestamp"), name="date"))


def stored_walk(folder: Path, bars: int = 800) -> pd.DataFrame:
    """A random walk stored as the user's series RW 1d in `folder`, as it reads back."""
    store_bars(walk(bars, seed=1), symbol="RW", timeframe="1d", data_dir=folder)
    return load_bars("RW", "1d", folder)


def rewrite(folder: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    store_bars(change(load_bars("RW", "1d", folder)), symbol="RW", timeframe="1d", data_dir=folder)


def checksum(strategy: Strategy, folder: Path, end: str | None = None) -> str:
    return bars_checksum(research_bars(strategy, series_bars(strategy, folder, end=end), FRACTION))


def scaled(row: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """One bar's prices 1% higher (high and low too, so the bar stays valid)."""

    def change(bars: pd.DataFrame) -> pd.DataFrame:
        bars.iloc[row, :4] *= 1.01
        return bars

    return change


def test_bars_appended_after_the_cycles_range_leave_its_checksum_as_it_was(
    tmp_path: Path, make_strategy: Callable[..., Strategy]
) -> None:
    # Given a cycle's series, its last bar and the checksum of its research bars
    strategy = make_strategy(symbol="RW", timeframe="1d")
    bars = stored_walk(tmp_path)
    end, count = span(strategy, series_bars(strategy, tmp_path))
    recorded = checksum(strategy, tmp_path)
    assert (end, count) == (str(bars.index[-1]), 800)
    # When 60 bars are appended to the file
    extra = walk(60, seed=2, start=str(bars.index[-1] + pd.offsets.BDay()))
    rewrite(tmp_path, lambda old: pd.concat([old, extra]))
    # Then the series cut at the cycle's last bar has the same research bars, bit for bit
    assert checksum(strategy, tmp_path, end=end) == recorded
    # And the whole series would cut its lockbox later: its research bars are not the cycle's
    assert checksum(strategy, tmp_path) != recorded


@pytest.mark.parametrize(("row", "same"), [(100, False), (-5, True)], ids=["research-bar", "lockbox-bar"])
def test_a_changed_research_bar_changes_the_checksum_and_a_lockbox_bar_does_not(
    tmp_path: Path, make_strategy: Callable[..., Strategy], row: int, same: bool
) -> None:
    # Given a cycle's checksum
    strategy = make_strategy(symbol="RW", timeframe="1d")
    stored_walk(tmp_path)
    recorded = checksum(strategy, tmp_path)
    # When one bar of the file changes
    rewrite(tmp_path, scaled(row))
    # Then the checksum changes only if that bar was in the research period
    assert (checksum(strategy, tmp_path) == recorded) is same


def test_the_checksum_covers_every_symbol_in_order_and_reads_values_not_their_encoding() -> None:
    a, b = walk(50, seed=1).astype(float), walk(50, seed=2).astype(float)
    assert bars_checksum({"A": a, "B": b}) != bars_checksum({"B": b, "A": a})
    assert bars_checksum({"A": a, "B": b}) != bars_checksum({"A": a, "B": b.iloc[:-1]})
    # the same bars with another time unit and another NaN payload hash alike
    other = a.copy()
    other.index = pd.DatetimeIndex(other.index).as_unit("s")
    a.iloc[3, 4] = np.nan
    other.iloc[3, 4] = -np.float64("nan")
    assert bars_checksum({"A": a}) == bars_checksum({"A": other})


def test_figures_match_bit_for_bit_on_the_cpu_and_within_the_stated_tolerance_on_cuda() -> None:
    one_ulp = math.nextafter(0.1, 1.0)
    assert not same_figure(0.1, one_ulp, 0.0)
    assert same_figure(0.1, one_ulp, CUDA_TOLERANCE) and not same_figure(0.1, 0.1001, CUDA_TOLERANCE)
    assert same_figure(float("nan"), float("nan"), 0.0) and not same_figure(float("nan"), 0.0, CUDA_TOLERANCE)
    assert same_figure(3, 3, 0.0) and not same_figure(3, 4, CUDA_TOLERANCE)  # a count is never "close"
    assert same_figure(0.0, 1e-15, CUDA_TOLERANCE)  # near zero: 1e-12 absolute
    figures = compare("backtest", {"psr": 0.5, "trials": 2}, {"psr": 0.5, "trials": 3}, ("psr", "trials", "dsr"), 0)
    assert [(f.name, f.same) for f in figures] == [("psr", True), ("trials", False)]  # only what the record has


def test_the_replay_block_reads_whole_into_the_typed_record(
    tmp_path: Path, document: Callable[..., dict[str, Any]]
) -> None:
    # Given a strategy document on a stored series
    stored_walk(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(document(symbol="RW", timeframe="1d")))
    # When a training on the CPU records its replay block, and its backtest the trials behind its DSR
    block = replay_block(
        path,
        data_dir=tmp_path,
        evaluation=Evaluation(lockbox_fraction=FRACTION, folds=2),
        seed=11,
        batched=True,
        device="cpu",
        settings={"training_epochs": 2},
    )
    record = ReplayRecord.of({"replay": block}, {"trials": 3, "trial_sharpes": [0.4, -0.1], "psr": 0.7})
    # Then the typed record holds every value, and nothing it does not know
    assert record is not None and record.model_extra == {}
    unset = {name for name, value in record if value is None}
    assert unset == {"device_name"}  # a CPU's
    assert (record.seed, record.folds, record.symbols, record.trials) == (11, 2, ["RW"], 3)
    assert record.strategy_yaml == path.read_text() and len(str(record.bars_sha256)) == 64
    assert record.settings == {"training_epochs": 2, "costs": {"commission": 0.0002, "slippage": 0.0001}}
    assert set(record.versions or {}) == {"python", "torch", "numpy", "pandas", "ktrdr-agent-pipeline"}
    # And a training from before replays were recorded has none
    assert ReplayRecord.of({"accuracy": 0.5}, {"trials": 3}) is None

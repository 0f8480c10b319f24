"""Each series' research and lockbox end is fixed by its first cycle and recorded (issue 27; store/series.py).

Each test runs on a fresh SQLite file and on a fresh Postgres database (the `store` fixture).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

from agent_pipeline.config import reset_settings
from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.data import load_bars, random_walk_bars, store_bars
from agent_pipeline.store.operations import OperationsStore, OperationType
from agent_pipeline.store.series import drop_cuts, fix_series_end, list_cuts, series_cut

DOCUMENT = {
    "name": "cut_demo", "symbol": "RW", "timeframe": "1d", "indicators": [{"type": "rsi", "period": 14}],
    "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 0, 50]}}},
    "labels": {"zigzag_threshold": 0.02, "lookahead": 5},
}  # fmt: skip


def walk(bars: int, seed: int, start: str = "1999-01-04") -> pd.DataFrame:
    frame = random_walk_bars(bars, seed=seed, start=start)
    return frame.set_index(pd.DatetimeIndex(frame.pop("timestamp"), name="date"))


def test_the_first_end_fixed_holds_and_later_ones_read_it(store: OperationsStore) -> None:
    assert series_cut(store, symbol="rw", timeframe="1d") is None
    first = fix_series_end(store, symbol="rw", timeframe="1d", end="2001-01-05 00:00:00", cycle_id="op_a")
    later = fix_series_end(store, symbol="RW", timeframe="1d", end="2002-03-01 00:00:00", cycle_id="op_b")
    assert (later.series_end, later.cycle_id, later.symbol) == ("2001-01-05 00:00:00", "op_a", "RW")
    assert later == first == series_cut(store, symbol="RW", timeframe="1d")
    assert fix_series_end(store, symbol="RW", timeframe="1h", end="x", cycle_id="op_c").series_end == "x"
    assert [(cut.symbol, cut.timeframe) for cut in list_cuts(store)] == [("RW", "1d"), ("RW", "1h")]


def test_first_cycles_racing_all_get_one_end(store: OperationsStore) -> None:
    def fix(i: int) -> str:
        return fix_series_end(store, symbol="RACE", timeframe="1d", end=f"200{i}-01-01", cycle_id=f"op_{i}").series_end

    with ThreadPoolExecutor(max_workers=4) as pool:
        ends = set(pool.map(fix, range(8)))
    assert len(ends) == 1 and ends == {series_cut(store, symbol="RACE", timeframe="1d").series_end}  # type: ignore[union-attr]


def series_and_strategy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The random walk RW (500 daily bars) in the data folder the research worker reads, and a strategy on it; returns
    the metadata of a cycle of that strategy."""
    monkeypatch.setenv("KTRDR_DATA_DIR", str(tmp_path))
    reset_settings()
    store_bars(walk(500, seed=1), symbol="RW", timeframe="1d", data_dir=tmp_path)
    strategy = tmp_path / "s.yaml"
    strategy.write_text(yaml.safe_dump(DOCUMENT))
    return {"symbol": "RW", "timeframe": "1d", "strategy_path": str(strategy)}


def test_a_cycle_after_an_append_is_evaluated_up_to_the_end_its_series_first_cycle_fixed(
    store: OperationsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.tasks.training import _evaluation

    # Given a series and a strategy on it, and the data folder the research worker reads
    meta = series_and_strategy(tmp_path, monkeypatch)

    def evaluation() -> dict:
        cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
        return _evaluation(store, cycle)

    # When the first cycle's training is submitted, then bars are appended, then a second cycle's is
    first = evaluation()
    end = str(load_bars("RW", "1d", tmp_path).index[-1])
    stored = load_bars("RW", "1d", tmp_path)
    extra = walk(40, seed=2, start=str(stored.index[-1] + pd.offsets.BDay()))
    store_bars(pd.concat([stored, extra]), symbol="RW", timeframe="1d", data_dir=tmp_path)
    second = evaluation()
    # Then both are evaluated up to the first cycle's last bar: the appended bars are forward bars
    assert first["series_end"] == second["series_end"] == end
    assert first["lockbox_fraction"] == second["lockbox_fraction"] and first["folds"] == second["folds"]


def test_an_append_before_the_first_cycle_leaves_its_bars_out_of_research_and_lockbox(
    store: OperationsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.tasks.training import _evaluation

    # Given a series whose cycles ran before its end was recorded (no cut), and a strategy on it
    meta = series_and_strategy(tmp_path, monkeypatch)
    before = str(load_bars("RW", "1d", tmp_path).index[-1])
    # When 40 bars are appended (their range recorded) before any cycle fixes the series' end
    extra = walk(40, seed=2, start=str(pd.Timestamp(before) + pd.offsets.BDay()))
    extra.to_csv(tmp_path / "new.csv", index_label="date")
    append_bars(FileBarSource(tmp_path / "new.csv"), symbol="RW", timeframe="1d", data_dir=tmp_path)
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    # Then the first cycle fixes the end at the last bar before them: research and lockbox end where they did
    assert _evaluation(store, cycle)["series_end"] == before
    assert series_cut(store, symbol="RW", timeframe="1d").series_end == before  # type: ignore[union-attr]


def test_dropped_cuts_are_fixed_anew_by_the_next_cycle(store: OperationsStore) -> None:
    fix_series_end(store, symbol="RW", timeframe="1d", end="2001-01-05 00:00:00", cycle_id="op_a")
    fix_series_end(store, symbol="DUO", timeframe="1d", end="2001-01-05 00:00:00", cycle_id="op_a")
    fix_series_end(store, symbol="RW", timeframe="1h", end="2001-01-05 00:00:00", cycle_id="op_a")
    assert drop_cuts(store, symbols=["rw", "duo", "none"], timeframe="1d") == 2
    assert [(cut.symbol, cut.timeframe) for cut in list_cuts(store)] == [("RW", "1h")]
    assert fix_series_end(store, symbol="RW", timeframe="1d", end="2002-01-01", cycle_id="op_b").cycle_id == "op_b"
    assert drop_cuts(store, symbols=[], timeframe="1d") == 0


@pytest.mark.parametrize("size", [0, 2], ids=["series", "universe"])
def test_a_calibration_series_written_anew_has_no_fixed_end(
    store: OperationsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    from agent_pipeline.config import get_settings
    from agent_pipeline.pipeline.calibrate import CalibrationPlan, plant, series_of

    # Given a calibration series (or planted universe) whose first cycle fixed its end, and its symbols'
    monkeypatch.setenv("KTRDR_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    plan = CalibrationPlan(kinds=("reversal",), strengths=(2.0,), bars=300, universe_size=size)
    spec = series_of(plan)[0]
    names = [spec.symbol, *([f"{spec.symbol}.S{i:02d}" for i in range(size)])]
    for name in names:
        fix_series_end(store, symbol=name, timeframe="1d", end="2000-06-01 00:00:00", cycle_id="op_old")
    # When calibration writes it again (its bars replaced)
    plant(spec, plan, get_settings(), store)
    # Then no end is fixed for any of them: the next cycle fixes one on the bars written now
    assert [series_cut(store, symbol=name, timeframe="1d") for name in names] == [None] * len(names)

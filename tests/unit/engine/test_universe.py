"""Universes as data (issue 24): wide CSV imports, the registry, grouping, the bundled SP500_20, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine.data import close_only_pairs, is_close_only, load_bars, store_bars
from agent_pipeline.engine.universe import (
    REGISTRY,
    create_universe,
    get_universe,
    import_universe,
    list_universes,
    read_registry,
)
from agent_pipeline.errors import DataError

HEADER = "date,S00,S01,S02"
ROWS = ["2020-01-01,1,2,3", "2020-01-02,1.1,2.1,3.1", "2020-01-03,1.2,,3.2", "2020-01-06,1.3,2.2,3.3"]


def wide(tmp_path: Path, header: str = HEADER, rows: list[str] = ROWS, name: str = "wide.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_each_column_becomes_a_close_only_series_of_the_universe(tmp_path: Path) -> None:
    data = tmp_path / "data"
    info = import_universe(wide(tmp_path), name="demo", timeframe="1d", data_dir=data)
    assert info.name == "DEMO" and info.symbols == ("DEMO.S00", "DEMO.S01", "DEMO.S02") and info.close_only
    # common dates: the three dates every symbol has (S01 has no 2020-01-03)
    assert info.common_bars == 3 and (info.common_start, info.common_end) == (
        pd.Timestamp("2020-01-01"),
        pd.Timestamp("2020-01-06"),
    )
    bars = load_bars("DEMO.S01", "1d", data)
    assert bars["close"].tolist() == [2, 2.1, 2.2] and is_close_only(bars)
    assert bars[["open", "high", "low", "volume"]].isna().all().all()  # nothing invented
    with gzip.open(data / "DEMO.S00_1d.csv.gz", "rt") as handle:
        assert handle.readline().strip() == "date,close"
    assert json.loads((data / REGISTRY).read_text())["DEMO"]["symbols"] == list(info.symbols)
    assert close_only_pairs(data) >= {("DEMO.S00", "1d"), ("DEMO.S01", "1d")}
    assert ("EURUSD", "1h") not in close_only_pairs(data)


def test_two_universes_may_both_have_a_column_s00(tmp_path: Path) -> None:
    data = tmp_path / "data"
    import_universe(wide(tmp_path), name="one", timeframe="1d", data_dir=data)
    doubled = [
        ",".join([row.split(",")[0], *(str(2 * float(x)) if x else "" for x in row.split(",")[1:])]) for row in ROWS
    ]
    import_universe(wide(tmp_path, rows=doubled), name="two", timeframe="1d", data_dir=data)
    assert load_bars("TWO.S00", "1d", data)["close"].iloc[0] == 2 * load_bars("ONE.S00", "1d", data)["close"].iloc[0]
    assert set(read_registry(data)) == {"ONE", "TWO"}


def test_a_name_that_exists_is_refused_unless_replace_which_drops_the_old_series(tmp_path: Path) -> None:
    data = tmp_path / "data"
    import_universe(wide(tmp_path), name="demo", timeframe="1d", data_dir=data)
    before = files(data)
    with pytest.raises(DataError, match="universe DEMO exists already .*--replace"):
        import_universe(wide(tmp_path), name="Demo", timeframe="1d", data_dir=data)
    assert files(data) == before
    narrower = wide(tmp_path, header="date,S00,S09", rows=[",".join(r.split(",")[:2] + ["5"]) for r in ROWS])
    info = import_universe(narrower, name="demo", timeframe="1d", data_dir=data, replace=True)
    assert info.symbols == ("DEMO.S00", "DEMO.S09")
    assert not (data / "DEMO.S01_1d.csv.gz").exists() and not (data / "DEMO.S02_1d.csv.gz").exists()
    weekly = ["2020-01-06,1,2", "2020-01-13,1.1,2.1", "2020-01-20,1.2,2.2"]
    import_universe(
        wide(tmp_path, header="date,S00,S09", rows=weekly), name="demo", timeframe="1w", data_dir=data, replace=True
    )
    assert sorted(p.name for p in data.glob("DEMO.*")) == ["DEMO.S00_1w.csv.gz", "DEMO.S09_1w.csv.gz"]


def test_a_bundled_universe_cannot_be_replaced(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="SP500_20 is a bundled universe"):
        import_universe(wide(tmp_path), name="sp500_20", timeframe="1d", data_dir=tmp_path / "data", replace=True)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (HEADER, [*ROWS[:2], "2020-01-03,1.2,3.2", ROWS[3]], r"ragged file: line 4 has 3 fields, the header has 4"),
        (HEADER, [*ROWS[:2], "2020-01-03,1.2,2.15,3.2,9"], r"ragged file: line 4 has 5 fields"),
        ("date,S00,S01,s00", ROWS, r"duplicate symbol 'S00' in the header \(columns 2 and 4\)"),
        (HEADER, [*ROWS[:2], "2020-01-03,1.2,abc,3.2", ROWS[3]], r"non-numeric price 'abc' for S01 on line 4"),
        (HEADER, [r.rsplit(",", 1)[0] + "," for r in ROWS], r"S02 has no bars in the common range"),
        ("date,S00,S01", ["2020-01-01,1,", "2020-01-02,1.1,", "2020-01-03,,2", "2020-01-06,,2.1"], r"S00 has no bars"),
        ("date,S00,S/01", ROWS, r"column 3: symbol 'S/01' must match"),
        (HEADER, [*ROWS[:3], "2020-01-06,1.3,-2,3.3"], r"DEMO.S01: invalid data: 1 rows with non-positive prices"),
    ],
    ids=["short-row", "long-row", "duplicate", "non-numeric", "empty-column", "no-overlap", "bad-name", "negative"],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, header: str, rows: list[str], message: str) -> None:
    data = tmp_path / "data"
    import_universe(wide(tmp_path, name="ok.csv"), name="other", timeframe="1d", data_dir=data)
    before = files(data)
    with pytest.raises(DataError, match=message) as caught:
        import_universe(wide(tmp_path, header, rows), name="demo", timeframe="1d", data_dir=data)
    assert "\n" not in str(caught.value)
    assert files(data) == before


def test_the_timeframe_is_checked_against_the_bars(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="DEMO.S00: bars are 1 days 00:00:00 apart .* the timeframe is 1h"):
        import_universe(wide(tmp_path), name="demo", timeframe="1h", data_dir=tmp_path / "data")


def test_create_groups_series_that_exist(tmp_path: Path) -> None:
    data = tmp_path / "data"
    index = pd.bdate_range("2017-03-01", periods=30)
    store_bars(pd.DataFrame({"close": np.linspace(1, 2, 30)}, index=index), symbol="ABC", timeframe="1d", data_dir=data)
    info = create_universe("mix", timeframe="1d", symbols=["abc", "SP500", " NASDAQ "], data_dir=data)
    assert info.symbols == ("ABC", "SP500", "NASDAQ") and info.common_bars == 30 and info.close_only
    assert get_universe("MIX", data).owned is False
    only_ohlc = create_universe("indices", timeframe="1d", symbols=["SP500", "NASDAQ"], data_dir=data)
    assert not only_ohlc.close_only and only_ohlc.common_bars == 5031


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        (["SP500", "GBPUSD"], "no data for GBPUSD 1d"),
        (["SP500", "sp500"], "duplicate symbol 'SP500'"),
        ([" ", ""], "needs at least one symbol"),
        (["SP500", "SP500_20.AAPL"], None),
    ],
)
def test_create_refuses_what_cannot_be_a_universe(tmp_path: Path, symbols: list[str], message: str | None) -> None:
    data = tmp_path / "data"
    if message is None:  # SP500 (1999-2018) and a bundled universe's AAPL (1990-2022) overlap: accepted
        assert create_universe("ok", timeframe="1d", symbols=symbols, data_dir=data).common_bars > 4000
        return
    with pytest.raises(DataError, match=message):
        create_universe("bad", timeframe="1d", symbols=symbols, data_dir=data)
    assert not (data / REGISTRY).exists()


def test_a_universe_name_has_no_dot(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="invalid universe name 'a.b'"):
        create_universe("a.b", timeframe="1d", symbols=["SP500"], data_dir=tmp_path)


def test_the_bundled_sp500_20_is_listed_and_readable_without_writing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bundled = next(info for info in list_universes(data) if info.name == "SP500_20")
    assert bundled.source == "bundled" and bundled.close_only and len(bundled.symbols) == 20
    assert bundled.common_bars == 8313 and bundled.common_start == pd.Timestamp("1990-01-02")
    assert bundled.common_end == pd.Timestamp("2022-12-28") and "SP500_20.AAPL" in bundled.symbols
    aapl = load_bars("sp500_20.aapl", "1d", data)
    assert len(aapl) == 8313 and is_close_only(aapl) and aapl["close"].iloc[0] == pytest.approx(0.264)
    assert not data.exists()  # a read never writes

"""Any bytes given to `ktrdr data import` give a clean `DataError` or a valid import, never another exception."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent_pipeline.cli import cli
from agent_pipeline.engine.data import PRICE_COLUMNS, DatasetInfo, import_csv, is_close_only, load_bars
from agent_pipeline.errors import DataError

# pandas falls back to dateutil on odd date text, and says so for every such file.
pytestmark = pytest.mark.filterwarnings("ignore:Could not infer format:UserWarning")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEPARATORS = st.sampled_from([",", ";", "\t"])
CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**13).map(str),
    st.sampled_from(["", "null", "nan", "2017-01-02 10:00", "2017.01.02", "02.01.2017 10:00:00.000", "1e400"]),
    st.text(max_size=6),
)
HEADERS = st.sampled_from(
    [
        "date,open,high,low,close,volume",
        "Date,Open,High,Low,Close,Adj Close,Volume",
        "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>",
        "timestamp;open;high;low;close",
        "",
    ]
)


@st.composite
def csv_like(draw: st.DrawFn) -> bytes:
    """Text shaped like an OHLCV export (a header, rows of cells), with any cell possibly wrong."""
    separator = draw(SEPARATORS)
    header = draw(HEADERS).replace(",", separator)
    rows = draw(st.lists(st.lists(CELL, min_size=0, max_size=8), max_size=12))
    lines = ([header] if header else []) + [separator.join(row) for row in rows]
    return "\n".join(lines).encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), errors="replace")


@st.composite
def hourly_bars(draw: st.DrawFn) -> bytes:
    """A plausible hourly series whose prices may be wrong (crossed, zero, missing) and rows may be shuffled."""
    count = draw(st.integers(1, 40))
    start = pd.Timestamp("2017-01-02 00:00") + pd.Timedelta(hours=draw(st.integers(0, 1000)))
    price = st.floats(-1.0, 3.0) | st.just(float("nan"))
    lines = ["date,open,high,low,close,volume"]
    for hour in range(count):
        values = [draw(price) for _ in range(4)] + [draw(st.integers(-5, 1000))]
        lines.append(f"{start + pd.Timedelta(hours=hour):%Y-%m-%d %H:%M}," + ",".join(map(str, values)))
    body = lines[1:]
    if draw(st.booleans()):
        body = draw(st.permutations(body))
    return "\n".join([lines[0], *body]).encode()


def _import(raw: bytes) -> DatasetInfo | DataError:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.csv"
        path.write_bytes(raw)
        try:
            info = import_csv(path, symbol="FUZZ", timeframe="1h", data_dir=Path(folder) / "data")
        except DataError as error:
            assert str(error) and "\n" not in str(error).strip()
            return error
        _assert_valid_store(Path(folder) / "data")
        return info


def _assert_valid_store(data_dir: Path) -> None:
    """What an import stores is what training reads: sorted unique dates, positive, consistent prices."""
    bars = load_bars("FUZZ", "1h", data_dir)
    assert len(bars) > 0
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    if is_close_only(bars):  # a file with closes alone: kept as closes, nothing invents the rest (issue 24)
        assert bars[["open", "high", "low"]].isna().all().all()
        assert (bars["close"] > 0).all() and all(math.isfinite(v) for v in bars["close"])
        return
    prices = bars[list(PRICE_COLUMNS)]
    assert (prices > 0).all().all() and all(math.isfinite(v) for v in prices.to_numpy().ravel())
    assert (bars["high"] >= bars[["open", "close", "low"]].max(axis=1) - 1e-12).all()
    assert (bars["low"] <= bars[["open", "close", "high"]].min(axis=1) + 1e-12).all()


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_import_cleanly_or_fail_with_a_data_error(raw: bytes) -> None:
    _import(raw)


@FUZZ
@given(csv_like())
@example(b"date,open,high,low,close,volume\n2017-01-02 10:00\n0.0")  # pandas' multi-line date advice, once leaked
def test_any_csv_shaped_text_imports_cleanly_or_fails_with_a_data_error(raw: bytes) -> None:
    _import(raw)


@FUZZ
@given(hourly_bars())
def test_any_hourly_series_imports_cleanly_or_fails_with_a_data_error(raw: bytes) -> None:
    _import(raw)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), csv_like(), hourly_bars()))
def test_the_cli_answers_any_file_with_one_line_and_exit_0_or_1(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.csv"
        path.write_bytes(raw)
        result = CliRunner().invoke(
            cli,
            ["data", "import", str(path), "--symbol", "FUZZ", "--timeframe", "1h"],
            env={"KTRDR_HOME": folder, "KTRDR_DATA_DIR": str(Path(folder) / "data")},
        )
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    else:
        assert result.output.startswith("Imported ")

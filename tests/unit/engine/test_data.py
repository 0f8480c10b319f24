"""Market data: bundled series, CSV import in the accepted layouts, validation, and the data folder."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.engine import data
from agent_pipeline.engine.data import available_pairs, import_csv, list_datasets, load_bars
from agent_pipeline.errors import DataError

HOURLY_ROWS = [
    ("2024-01-02 00:00", 1.10, 1.12, 1.09, 1.11, 100),
    ("2024-01-02 01:00", 1.11, 1.13, 1.10, 1.12, 120),
    ("2024-01-02 02:00", 1.12, 1.14, 1.11, 1.13, 90),
    ("2024-01-02 03:00", 1.13, 1.15, 1.12, 1.14, 80),
]


def write(tmp_path, text: str, name: str = "in.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def generic_csv(rows=HOURLY_ROWS, header="Timestamp,Open,High,Low,Close,Volume") -> str:
    return header + "\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"


def test_bundled_series_are_listed_with_their_sizes():
    infos = {(i.symbol, i.timeframe): i for i in list_datasets(None)}
    assert {key: info.bars for key, info in infos.items()} == {
        ("EURUSD", "1h"): 6225,
        ("SP500", "1d"): 5031,
        ("NASDAQ", "1d"): 5031,
    }
    assert {info.source for info in infos.values()} == {"bundled"}
    assert infos["SP500", "1d"].start.year == 1999 and infos["SP500", "1d"].end.year == 2018


@pytest.mark.parametrize(("symbol", "timeframe"), [("EURUSD", "1h"), ("SP500", "1d"), ("NASDAQ", "1d")])
def test_loaded_bars_have_the_promised_shape(symbol, timeframe):
    bars = load_bars(symbol, timeframe)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.tz is None
    assert bars.index.is_monotonic_increasing and bars.index.is_unique
    assert (bars["high"] >= bars["low"]).all() and not bars.isna().any().any()


def test_callers_cannot_corrupt_the_cache():
    bars = load_bars("EURUSD", "1h")
    bars.iloc[0, 0] = -1.0
    bars["close"] = 0.0
    assert load_bars("EURUSD", "1h").iloc[0, 0] == pytest.approx(1.05236)


def test_symbols_are_case_insensitive():
    assert len(load_bars("eurusd", "1h")) == 6225


def test_unknown_pair_lists_what_is_available():
    with pytest.raises(DataError) as caught:
        load_bars("GBPUSD", "1h")
    message = str(caught.value)
    assert "\n" not in message
    assert "no data for GBPUSD 1h" in message and "EURUSD 1h" in message and "SP500 1d" in message


def test_generic_csv_is_imported_into_the_data_folder(tmp_path):
    data_dir = tmp_path / "data"
    info = import_csv(write(tmp_path, generic_csv()), symbol="eurusd", timeframe="1h", data_dir=data_dir)
    assert info.path == data_dir / "EURUSD_1h.csv.gz"
    assert (info.symbol, info.bars, info.source) == ("EURUSD", 4, "user")
    assert info.start == pd.Timestamp("2024-01-02 00:00") and info.end == pd.Timestamp("2024-01-02 03:00")
    assert [p.name for p in data_dir.iterdir()] == ["EURUSD_1h.csv.gz"]  # no temp file left behind
    with gzip.open(info.path, "rt") as handle:
        assert handle.readline().strip() == "date,open,high,low,close,volume"


def test_user_data_overrides_bundled_data(tmp_path):
    import_csv(write(tmp_path, generic_csv()), symbol="EURUSD", timeframe="1h", data_dir=tmp_path)
    infos = {(i.symbol, i.timeframe): i for i in list_datasets(tmp_path)}
    assert infos["EURUSD", "1h"].source == "user" and infos["SP500", "1d"].source == "bundled"
    assert len(load_bars("EURUSD", "1h", tmp_path)) == 4
    assert len(load_bars("EURUSD", "1h", None)) == 6225


def test_available_pairs_include_user_pairs(tmp_path):
    import_csv(write(tmp_path, generic_csv()), symbol="GBPUSD", timeframe="1h", data_dir=tmp_path)
    assert available_pairs(tmp_path) == {
        ("EURUSD", "1h"),
        ("SP500", "1d"),
        ("NASDAQ", "1d"),
        ("GBPUSD", "1h"),
    }


def test_yahoo_export_uses_close_and_drops_null_rows(tmp_path):
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02,10,11,9,10.5,5.0,1000\n"
        "2024-01-03,null,null,null,null,null,null\n"
        "2024-01-04,10.5,12,10,11.5,5.5,1100\n"
        "2024-01-05,11.5,12,11,11.8,5.9,900\n"
    )
    info = import_csv(write(tmp_path, text), symbol="AAPL", timeframe="1d", data_dir=tmp_path)
    bars = load_bars("AAPL", "1d", tmp_path)
    assert bars["close"].tolist() == [10.5, 11.5, 11.8]
    assert any("1 rows without prices" in w for w in info.warnings)


def test_metatrader4_headerless_export_is_read(tmp_path):
    text = (
        "2017.01.02,00:00,1.05236,1.05253,1.05221,1.05227,143\n"
        "2017.01.02,01:00,1.05227,1.05426,1.05226,1.05282,253\n"
        "2017.01.02,02:00,1.05283,1.05283,1.05268,1.05281,131\n"
    )
    import_csv(write(tmp_path, text), symbol="EURUSD", timeframe="1h", data_dir=tmp_path)
    bars = load_bars("EURUSD", "1h", tmp_path)
    assert bars.index[1] == pd.Timestamp("2017-01-02 01:00") and bars["volume"].iloc[1] == 253


def test_metatrader5_tab_export_is_read(tmp_path):
    header = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    rows = "".join(f"2023.03.0{d}\t00:00:00\t1.1\t1.2\t1.0\t1.15\t{d}00\t0\t5\n" for d in (1, 2, 3))
    import_csv(write(tmp_path, header + rows), symbol="EURUSD", timeframe="1d", data_dir=tmp_path)
    bars = load_bars("EURUSD", "1d", tmp_path)
    assert bars.index[2] == pd.Timestamp("2023-03-03") and bars["volume"].tolist() == [100, 200, 300]


def test_day_first_dotted_dates_are_read_day_first(tmp_path):
    rows = [(f"{d:02d}.01.2017 00:00:00.000", 1, 2, 0.5, 1.5) for d in (11, 12, 13)]
    import_csv(
        write(tmp_path, generic_csv(rows, "Gmt time,Open,High,Low,Close")),
        symbol="X",
        timeframe="1d",
        data_dir=tmp_path,
    )
    bars = load_bars("X", "1d", tmp_path)
    assert bars.index[-1] == pd.Timestamp("2017-01-13") and (bars["volume"] == 0).all()


def test_epoch_seconds_are_read(tmp_path):
    start = int(pd.Timestamp("2024-01-02").timestamp())
    rows = [(start + 3600 * i, 1, 2, 0.5, 1.5, 10) for i in range(3)]
    import_csv(
        write(tmp_path, generic_csv(rows, "time,open,high,low,close,volume")),
        symbol="X",
        timeframe="1h",
        data_dir=tmp_path,
    )
    assert load_bars("X", "1h", tmp_path).index[-1] == pd.Timestamp("2024-01-02 02:00")


def test_unsorted_rows_and_duplicates_are_fixed_and_reported(tmp_path):
    rows = [HOURLY_ROWS[2], HOURLY_ROWS[0], HOURLY_ROWS[1], (*HOURLY_ROWS[1][:4], 9.99, 1), HOURLY_ROWS[3]]
    info = import_csv(write(tmp_path, generic_csv(rows)), symbol="X", timeframe="1h", data_dir=tmp_path)
    bars = load_bars("X", "1h", tmp_path)
    assert bars.index.is_monotonic_increasing and len(bars) == 4
    assert bars["close"].iloc[1] == 9.99  # the last of the duplicates wins (high widened to fit it)
    assert "rows were not in date order: sorted" in info.warnings
    assert "1 duplicate timestamps: kept the last row of each" in info.warnings


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (("2024-01-02 01:00", 1.11, 1.13, 1.10, "", 120), "1 rows with NaN close"),
        (("2024-01-02 01:00", 1.11, 1.00, 1.10, 1.05, 120), "1 rows with high < low"),
        (("2024-01-02 01:00", 1.11, 1.13, -1.0, 1.12, 120), "1 rows with non-positive prices"),
    ],
)
def test_fatal_problems_raise_with_counts_and_write_nothing(tmp_path, row, problem):
    rows = [HOURLY_ROWS[0], row, *HOURLY_ROWS[2:]]
    with pytest.raises(DataError, match=problem):
        import_csv(write(tmp_path, generic_csv(rows)), symbol="X", timeframe="1h", data_dir=tmp_path / "d")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_a_file_without_rows_is_rejected(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        import_csv(write(tmp_path, "date,open,high,low,close\n"), symbol="X", timeframe="1h", data_dir=tmp_path)


def test_a_file_without_a_close_column_is_rejected(tmp_path):
    with pytest.raises(DataError, match="no close column"):
        import_csv(
            write(tmp_path, "date,open,high,low\n2024-01-01,1,2,0.5\n"),
            symbol="X",
            timeframe="1d",
            data_dir=tmp_path,
        )


def test_spacing_that_contradicts_the_timeframe_is_rejected(tmp_path):
    rows = [(f"2024-01-0{d}", 1, 2, 0.5, 1.5) for d in range(1, 6)]
    with pytest.raises(DataError, match="bars are 1 days .* apart .*timeframe is 1h"):
        import_csv(
            write(tmp_path, generic_csv(rows, "date,open,high,low,close")),
            symbol="X",
            timeframe="1h",
            data_dir=tmp_path,
        )


@pytest.mark.parametrize(
    ("symbol", "timeframe"), [("../etc", "1h"), ("a/b", "1h"), ("..", "1h"), ("X", "2h"), ("X", "../1h")]
)
def test_names_that_could_escape_the_folder_are_refused(tmp_path, symbol, timeframe):
    with pytest.raises(DataError, match="invalid"):
        import_csv(write(tmp_path, generic_csv()), symbol=symbol, timeframe=timeframe, data_dir=tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_weekends_are_not_gaps_but_missing_weekdays_are():
    # EURUSD 2017 closes every weekend and has no unusual gaps; SP500 has 3 (9/11, Jan 2007, Hurricane Sandy)
    eurusd, sp500 = load_bars("EURUSD", "1h"), load_bars("SP500", "1d")
    assert data.count_gaps(eurusd.index, "1h")[0] == 0
    count, largest = data.count_gaps(sp500.index, "1d")
    assert count == 3 and largest == pd.Timedelta(days=7)
    # An hourly series missing a Tuesday-to-Thursday stretch has one unusual gap
    hours = pd.date_range("2024-01-01", "2024-01-10", freq="h")
    holed = hours[(hours <= "2024-01-02 12:00") | (hours > "2024-01-04 12:00")]
    assert data.count_gaps(holed, "1h") == (1, pd.Timedelta(hours=49))


def test_gaps_are_reported_as_warnings(tmp_path):
    rows = [(day.strftime("%Y-%m-%d"), 1, 2, 0.5, 1.5) for day in pd.bdate_range("2024-01-01", "2024-03-01")]
    del rows[10:20]
    info = import_csv(
        write(tmp_path, generic_csv(rows, "date,open,high,low,close")),
        symbol="X",
        timeframe="1d",
        data_dir=tmp_path,
    )
    assert info.warnings == ("1 unusual gaps in the data (largest 17 days 00:00:00)",)


def test_a_broken_user_file_is_skipped_in_listings(tmp_path):
    (tmp_path / "BROKEN_1h.csv.gz").write_bytes(b"not gzip")
    assert ("BROKEN", "1h") not in {(i.symbol, i.timeframe) for i in list_datasets(tmp_path)}
    with pytest.raises(DataError, match="cannot read"):
        load_bars("BROKEN", "1h", tmp_path)


def test_reimport_replaces_the_series_and_the_cache_sees_it(tmp_path):
    import_csv(write(tmp_path, generic_csv()), symbol="X", timeframe="1h", data_dir=tmp_path / "d")
    assert len(load_bars("X", "1h", tmp_path / "d")) == 4
    import_csv(write(tmp_path, generic_csv(HOURLY_ROWS[:3])), symbol="X", timeframe="1h", data_dir=tmp_path / "d")
    assert len(load_bars("X", "1h", tmp_path / "d")) == 3

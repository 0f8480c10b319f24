"""Appending bars (issue 27): new bars after a series' end, every refusal whole, the appended ranges recorded."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from agent_pipeline.engine import files
from agent_pipeline.engine.append import (
    AppendedRange,
    AppendResult,
    append_bars,
    appended_path,
    clear_appended,
    default_max_gap,
    forward_start,
    merge_appended,
    read_appended,
)
from agent_pipeline.engine.bars_source import BarSource, FileBarSource
from agent_pipeline.engine.data import close_bars, dataset_path, load_bars, store_bars
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.errors import DataError

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
# A planted series of 320 daily bars: the first 300 are stored, the rest arrive later.
STORED, WHOLE = 300, 320


class FrameSource:
    """A `BarSource` over bars in memory, as a live feed would hand them over (the seam, not a fake of ours)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.asked: list[dt.datetime] = []

    def bars_after(self, symbol: str, timeframe: str, after: dt.datetime) -> pd.DataFrame:
        self.asked.append(after)
        return self.frame[self.frame.index > after]


@pytest.fixture
def bars() -> pd.DataFrame:
    frame, _ = synth_bars("reversal", 2.0, 3, WHOLE)
    return frame


@pytest.fixture
def folder(tmp_path: Path, bars: pd.DataFrame) -> Path:
    """A data folder holding the first STORED bars as REV 1d."""
    store_bars(bars.iloc[:STORED], symbol="REV", timeframe="1d", data_dir=tmp_path / "data")
    return tmp_path / "data"


def csv_file(folder: Path, frame: pd.DataFrame, name: str = "new.csv") -> Path:
    path = folder.parent / name
    frame.to_csv(path, index_label="date")
    return path


def append(folder: Path, source: BarSource, max_gap: pd.Timedelta | None = None) -> AppendResult:
    return append_bars(source, symbol="rev", timeframe="1d", data_dir=folder, now=NOW, max_gap=max_gap)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_new_bars_are_appended_after_the_end_and_their_range_recorded(folder: Path, bars: pd.DataFrame) -> None:
    result = append(folder, FileBarSource(csv_file(folder, bars.iloc[STORED:])))
    assert (result.appended, result.skipped, result.bars) == (20, 0, WHOLE)
    loaded = load_bars("REV", "1d", folder)
    pd.testing.assert_frame_equal(loaded, load_bars("REV", "1d", store_whole(folder.parent, bars)), check_freq=False)
    first, last = str(bars.index[STORED]), str(bars.index[-1])
    assert read_appended(dataset_path("REV", "1d", folder)) == [AppendedRange(first, last, 20, NOW.isoformat())]
    assert json.loads(result.record.read_text())["symbol"] == "REV"
    assert forward_start(result.path) == bars.index[STORED]


def store_whole(root: Path, bars: pd.DataFrame) -> Path:
    """The whole series imported at once, in a folder of its own: what the append must equal."""
    store_bars(bars, symbol="REV", timeframe="1d", data_dir=root / "whole")
    return root / "whole"


def test_overlapping_bars_that_agree_are_skipped_and_the_same_file_twice_adds_nothing(
    folder: Path, bars: pd.DataFrame
) -> None:
    source = FileBarSource(csv_file(folder, bars.iloc[STORED - 5 :]))
    first = append(folder, source)
    assert (first.appended, first.skipped) == (20, 5)
    before = snapshot(folder)
    again = append(folder, source)
    assert (again.appended, again.skipped, again.start) == (0, 25, None)
    assert snapshot(folder) == before


def test_an_overlapping_bar_that_disagrees_refuses_the_whole_append_and_writes_nothing(
    folder: Path, bars: pd.DataFrame
) -> None:
    edited = bars.iloc[STORED - 3 :].copy()
    edited.iloc[1, edited.columns.get_loc("close")] *= 1.001
    before = snapshot(folder)
    with pytest.raises(DataError, match=r"1 bars disagree with the stored ones, first .*: close .* \(stored\)"):
        append(folder, FileBarSource(csv_file(folder, edited)))
    assert snapshot(folder) == before
    assert not appended_path(dataset_path("REV", "1d", folder)).exists()


def test_a_bar_before_the_end_that_the_series_lacks_is_refused(folder: Path, bars: pd.DataFrame) -> None:
    inserted = bars.iloc[STORED - 2 :].copy()
    inserted.index = inserted.index.where(
        inserted.index != inserted.index[0], inserted.index[0] - pd.Timedelta(hours=6)
    )
    with pytest.raises(DataError, match="are not stored bars, first .*: an append adds bars after the end only"):
        append(folder, FileBarSource(csv_file(folder, inserted)))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([STORED + 1, STORED, STORED + 2], r"bars out of order: .* comes after .*; nothing appended"),
        ([STORED, STORED + 1, STORED + 1], r"1 timestamps given twice, first "),
    ],
)
def test_bars_out_of_order_or_given_twice_are_refused(
    folder: Path, bars: pd.DataFrame, rows: list[int], message: str
) -> None:
    before = snapshot(folder)
    with pytest.raises(DataError, match=message):
        append(folder, FileBarSource(csv_file(folder, bars.iloc[rows])))
    assert snapshot(folder) == before


def test_a_gap_over_the_limit_is_refused_and_max_gap_lets_it_through(folder: Path, bars: pd.DataFrame) -> None:
    # Given bars that start 15 business days after the series' end: 16 weekdays, over the daily default of 10
    later = csv_file(folder, bars.iloc[STORED + 15 :])
    with pytest.raises(DataError, match=r"a gap of 16 days .* is over the limit of 10 days .*\(--max-gap\)"):
        append(folder, FileBarSource(later))
    result = append(folder, FileBarSource(later), max_gap=pd.Timedelta(days=16))
    assert result.appended == 5


def test_weekends_never_count_toward_the_gap(folder: Path, bars: pd.DataFrame) -> None:
    # The series ends on a Friday; Monday's bar is one weekday later
    assert bars.index[STORED - 1].day_name() == "Friday"
    result = append(
        folder, FileBarSource(csv_file(folder, bars.iloc[STORED : STORED + 1])), max_gap=pd.Timedelta(days=1)
    )
    assert result.appended == 1


def test_the_default_gap_is_ten_bars_for_daily_and_weekly_and_three_days_intraday() -> None:
    assert default_max_gap("1d") == pd.Timedelta(days=10)
    assert default_max_gap("1w") == pd.Timedelta(weeks=10)
    assert default_max_gap("1h") == default_max_gap("5m") == pd.Timedelta(days=3)


@pytest.mark.parametrize("cell", ["abc", "", "null"])
def test_a_missing_or_non_numeric_price_is_refused(folder: Path, bars: pd.DataFrame, cell: str) -> None:
    path = csv_file(folder, bars.iloc[STORED:])
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = cell  # the high of the third new bar
    path.write_text("\n".join([*lines[:3], ",".join(fields), *lines[4:]]) + "\n")
    before = snapshot(folder)
    with pytest.raises(DataError, match=r"new.csv: 1 rows with a missing or non-numeric high \(first at .*\)"):
        append(folder, FileBarSource(path))
    assert snapshot(folder) == before


def test_a_file_with_some_of_open_high_low_is_refused(folder: Path, bars: pd.DataFrame) -> None:
    path = csv_file(folder, bars.iloc[STORED:].drop(columns=["low"]))
    with pytest.raises(DataError, match="has open, high but no low: give all or none"):
        append(folder, FileBarSource(path))


def test_a_series_that_does_not_exist_is_refused(folder: Path, bars: pd.DataFrame) -> None:
    source = FileBarSource(csv_file(folder, bars.iloc[STORED:]))
    with pytest.raises(DataError, match=r"no series NOPE 1d to append to"):
        append_bars(source, symbol="nope", timeframe="1d", data_dir=folder)
    with pytest.raises(DataError, match=r"no series REV 1h to append to"):
        append_bars(source, symbol="rev", timeframe="1h", data_dir=folder)
    assert sorted(path.name for path in folder.iterdir()) == ["REV_1d.csv.gz"]


def test_bars_finer_than_the_timeframe_are_refused(folder: Path, bars: pd.DataFrame) -> None:
    hourly = bars.iloc[STORED : STORED + 1].copy()
    hourly.index = [bars.index[STORED - 1] + pd.Timedelta(hours=1)]
    with pytest.raises(DataError, match="bars closer than a 1d bar"):
        append(folder, FrameSource(hourly))


def test_five_or_more_bars_spaced_as_another_timeframe_are_refused(folder: Path, bars: pd.DataFrame) -> None:
    weekly = bars.iloc[STORED : STORED + 6].copy()
    weekly.index = pd.date_range(bars.index[STORED - 1] + pd.Timedelta(days=7), periods=6, freq="7D")
    with pytest.raises(DataError, match="bars are 7 days 00:00:00 apart .* but the timeframe is 1d"):
        append(folder, FrameSource(weekly), max_gap=pd.Timedelta(days=30))


def test_a_source_with_nothing_new_appends_nothing(folder: Path, bars: pd.DataFrame) -> None:
    source = FrameSource(bars.iloc[:STORED])
    before = snapshot(folder)
    result = append(folder, source)
    assert (result.appended, result.skipped) == (0, 0)
    assert source.asked == [bars.index[STORED - 1].to_pydatetime()]  # asked from the series' last bar
    assert snapshot(folder) == before


def test_two_appends_record_two_ranges_and_the_forward_start_stays(folder: Path, bars: pd.DataFrame) -> None:
    append(folder, FrameSource(bars.iloc[STORED : STORED + 10]))
    append(folder, FrameSource(bars.iloc[STORED + 10 :]))
    ranges = read_appended(dataset_path("REV", "1d", folder))
    assert [(r.start, r.bars) for r in ranges] == [(str(bars.index[STORED]), 10), (str(bars.index[STORED + 10]), 10)]
    assert forward_start(dataset_path("REV", "1d", folder)) == bars.index[STORED]
    assert len(load_bars("REV", "1d", folder)) == WHOLE


def test_merging_another_copy_of_the_record_keeps_each_range_once_by_start_and_clearing_empties_it(
    folder: Path, bars: pd.DataFrame
) -> None:
    # Given a record of the second ten bars here, and another copy (the data store's) of the first ten
    target = dataset_path("REV", "1d", folder)
    append(folder, FrameSource(bars.iloc[STORED : STORED + 10]))
    theirs = appended_path(target).read_bytes()
    append(folder, FrameSource(bars.iloc[STORED + 10 :]))
    mine = read_appended(target)
    record = json.loads(appended_path(target).read_text())
    appended_path(target).write_text(json.dumps({**record, "ranges": record["ranges"][1:]}))
    # When the other copy is merged in, twice
    merge_appended(target, theirs)
    merge_appended(target, theirs)
    # Then both ranges are recorded, once each, oldest first; and a cleared record has none
    assert read_appended(target) == mine
    assert json.loads(appended_path(target).read_text())["symbol"] == "REV"
    assert clear_appended(target) == appended_path(target) and read_appended(target) == []
    assert forward_start(target) is None


def test_a_series_never_appended_to_has_no_forward_start(folder: Path) -> None:
    assert read_appended(dataset_path("REV", "1d", folder)) == []
    assert forward_start(dataset_path("REV", "1d", folder)) is None


def test_a_close_only_series_takes_closes_and_an_ohlc_series_refuses_them(tmp_path: Path, bars: pd.DataFrame) -> None:
    folder = tmp_path / "data"
    store_bars(close_bars(bars["close"].iloc[:STORED]), symbol="U.A", timeframe="1d", data_dir=folder)
    path = tmp_path / "closes.csv"
    bars[["close"]].iloc[STORED - 2 : STORED + 10].to_csv(path, index_label="date")
    result = append_bars(FileBarSource(path), symbol="U.A", timeframe="1d", data_dir=folder)
    assert (result.appended, result.skipped) == (10, 2)
    # OHLC bars give a close-only series their closes only
    assert (
        append_bars(FrameSource(bars.iloc[STORED + 10 :]), symbol="U.A", timeframe="1d", data_dir=folder).appended == 10
    )
    stored = load_bars("U.A", "1d", folder)
    assert len(stored) == WHOLE and stored[["open", "high", "low", "volume"]].isna().all().all()
    pd.testing.assert_series_equal(stored["close"], bars["close"], check_freq=False, rtol=1e-9)
    with pytest.raises(DataError, match="the bars are close-only but REV 1d has open, high and low"):
        append_bars(
            FileBarSource(path), symbol="REV", timeframe="1d", data_dir=store_whole(tmp_path, bars.iloc[:STORED])
        )


def test_a_bundled_series_gets_its_copy_in_the_data_folder_with_the_new_bars(tmp_path: Path) -> None:
    bundled = load_bars("SP500", "1d")
    new = bundled.iloc[-3:].copy()
    new.index = pd.bdate_range(bundled.index[-1] + pd.Timedelta(days=1), periods=3)
    result = append_bars(FrameSource(new), symbol="sp500", timeframe="1d", data_dir=tmp_path)
    assert result.path == tmp_path / "SP500_1d.csv.gz" and result.appended == 3
    assert len(load_bars("SP500", "1d", tmp_path)) == len(bundled) + 3
    assert len(load_bars("SP500", "1d")) == len(bundled)  # the bundled file itself is untouched


def test_new_bars_without_volume_are_stored_with_volume_zero_and_say_so(folder: Path, bars: pd.DataFrame) -> None:
    result = append(folder, FileBarSource(csv_file(folder, bars.iloc[STORED:].drop(columns=["volume"]))))
    assert result.warnings == ("20 rows with NaN volume: set to 0",)
    assert (load_bars("REV", "1d", folder)["volume"].iloc[STORED:] == 0).all()


def test_a_series_that_cannot_be_written_leaves_the_series_and_its_record_as_they_were(
    folder: Path, bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first append recorded, and a disk that refuses the next write of the series itself
    append(folder, FrameSource(bars.iloc[STORED : STORED + 10]))
    before = snapshot(folder)
    monkeypatch.setattr(files.os, "replace", refusing_series(files.os.replace))
    # When the second append's series write fails
    with pytest.raises(OSError, match="disk full"):
        append(folder, FrameSource(bars.iloc[STORED + 10 :]))
    # Then the series and its record are the first append's, and no temp file is left
    assert snapshot(folder) == before


def refusing_series(replace: Callable[..., None]) -> Callable[..., None]:
    """`os.replace`, failing as a full disk would for a series file (a `.csv.gz`), passing anything else."""

    def patched(source: object, target: object) -> None:
        if str(target).endswith(".csv.gz"):
            raise OSError("disk full")
        replace(source, target)

    return patched

"""`ktrdr data append` as a user drives it (issue 27): forward bars after a series' end, or one line and nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import Result

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.engine.artifacts import ArtifactStore
from agent_pipeline.engine.data import load_bars, store_bars
from agent_pipeline.engine.datastore import sync_series
from agent_pipeline.engine.synth import synth_bars
from agent_pipeline.engine.universe import create_universe
from agent_pipeline.errors import StoreError
from agent_pipeline.store.operations import get_store
from agent_pipeline.store.series import series_cut
from tests.e2e.shell import data_dir, invoke

pytestmark = pytest.mark.e2e

# A planted series of 320 daily bars: the first 300 are imported, the rest arrive later.
STORED, WHOLE = 300, 320


@pytest.fixture
def bars() -> pd.DataFrame:
    frame, _ = synth_bars("reversal", 2.0, 3, WHOLE)
    return frame


@pytest.fixture
def imported(bars: pd.DataFrame, tmp_path: Path) -> Path:
    """REV 1d imported from a CSV of its first STORED bars, as a user would; returns the stored file."""
    path = write_csv(tmp_path / "first.csv", bars.iloc[:STORED])
    result = invoke("data", "import", str(path), "--symbol", "rev", "--timeframe", "1d")
    assert result.exit_code == 0, result.output
    return data_dir() / "REV_1d.csv.gz"


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index_label="date")
    return path


def append(path: Path, *options: str) -> Result:
    return invoke("data", "append", str(path), "--symbol", "rev", "--timeframe", "1d", *options)


def test_append_adds_the_bars_after_the_end_and_list_and_load_bars_see_them(
    imported: Path, bars: pd.DataFrame, tmp_path: Path
) -> None:
    result = append(write_csv(tmp_path / "new.csv", bars.iloc[STORED - 3 :]))
    assert result.exit_code == 0, result.output
    first, last = bars.index[STORED], bars.index[-1]
    assert f"Appended 20 bars to REV 1d ({first} to {last}), 320 bars now, skipped 3 stored bars" in result.stdout
    listed = invoke("data", "list", "--json")
    row = next(row for row in json.loads(listed.stdout)["data"] if row["symbol"] == "REV")
    assert row["bars"] == WHOLE and row["end"] == str(last)
    assert load_bars("REV", "1d", data_dir())["close"].iloc[-1] == pytest.approx(bars["close"].iloc[-1], rel=1e-9)
    record = json.loads((data_dir() / "REV_1d.appended.json").read_text())
    assert [(r["start"], r["end"], r["bars"]) for r in record["ranges"]] == [(str(first), str(last), 20)]


def test_the_same_file_twice_appends_nothing_the_second_time(
    imported: Path, bars: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "new.csv", bars.iloc[STORED:])
    assert append(path).exit_code == 0
    stored = imported.read_bytes()
    again = append(path, "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)["data"]
    assert (data["appended"], data["skipped"], data["bars"]) == (0, 20, WHOLE)
    assert imported.read_bytes() == stored


def edited(bars: pd.DataFrame, how: str) -> pd.DataFrame:
    """The arriving bars, broken as `how` says."""
    new = bars.iloc[STORED - 2 :].copy()
    if how == "disagree":
        new.iloc[0, new.columns.get_loc("close")] += 0.5
    elif how == "order":
        new = new.iloc[[0, 1, 3, 2, 4]]
    elif how == "twice":
        new = new.iloc[[0, 1, 2, 2, 3]]
    elif how == "gap":
        new = bars.iloc[STORED + 12 :]
    return new


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("disagree", "1 bars disagree with the stored ones, first "),
        ("order", "bars out of order: "),
        ("twice", "1 timestamps given twice, first "),
        ("gap", "a gap of 13 days 00:00:00 (weekdays) from "),
    ],
)
def test_a_bad_file_is_one_line_exit_1_and_writes_nothing(
    imported: Path, bars: pd.DataFrame, tmp_path: Path, how: str, message: str
) -> None:
    stored = imported.read_bytes()
    result = append(write_csv(tmp_path / "new.csv", edited(bars, how)))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}") and len(result.stderr.strip().splitlines()) == 1
    assert "nothing appended" in result.stderr and "Traceback" not in result.output
    assert imported.read_bytes() == stored
    assert sorted(path.name for path in data_dir().iterdir()) == ["REV_1d.csv.gz"]


def test_a_non_numeric_price_is_one_line_naming_the_cell(imported: Path, bars: pd.DataFrame, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "new.csv", bars.iloc[STORED:])
    text = path.read_text().splitlines()
    text[5] = ",".join([*text[5].split(",")[:4], "twelve", *text[5].split(",")[5:]])
    path.write_text("\n".join(text) + "\n")
    result = append(path)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: new.csv: 1 rows with a missing or non-numeric close (first at ")
    assert "'twelve'" in result.stderr and len(load_bars("REV", "1d", data_dir())) == STORED


def test_a_series_that_does_not_exist_is_one_line(bars: pd.DataFrame, tmp_path: Path) -> None:
    result = append(write_csv(tmp_path / "new.csv", bars.iloc[STORED:]))
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "Error: no series REV 1d to append to (`ktrdr data import` or `data synth` makes one)"
    )


def test_max_gap_lets_a_wider_gap_through_and_a_bad_one_is_a_usage_error(
    imported: Path, bars: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "new.csv", bars.iloc[STORED + 12 :])
    assert append(path).exit_code == 1
    bad = append(path, "--max-gap", "soon")
    assert bad.exit_code == 2 and "--max-gap" in bad.output
    result = append(path, "--max-gap", "13D")
    assert result.exit_code == 0, result.output
    assert "Appended 8 bars to REV 1d" in result.stdout


def test_appended_bars_go_to_the_data_store_from_its_latest_copy(
    bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given KTRDR_DATA_URL, and the series imported from another host: this host's data folder is empty
    store = imported_on_another_host(bars, monkeypatch, tmp_path)
    # When this host appends ten new bars
    on_host("this", monkeypatch, tmp_path)
    result = append(write_csv(tmp_path / "ten.csv", bars.iloc[STORED : STORED + 10]))
    # Then it fetched the store's copy, appended to it, and published the series and its record back
    assert result.exit_code == 0, result.output
    assert "Published REV_1d.csv.gz to " in result.stdout and "Published REV_1d.appended.json to " in result.stdout
    assert len(load_bars("REV", "1d", store)) == STORED + 10
    # And when the other host, whose copy is older, appends the next ten, it starts from the store's series and record
    on_host("other", monkeypatch, tmp_path)
    assert append(write_csv(tmp_path / "more.csv", bars.iloc[STORED + 10 :])).exit_code == 0
    assert len(load_bars("REV", "1d", store)) == WHOLE
    ranges = json.loads((store / "REV_1d.appended.json").read_text())["ranges"]
    assert [(r["start"], r["bars"]) for r in ranges] == [
        (str(bars.index[STORED]), 10),
        (str(bars.index[STORED + 10]), 10),
    ]


def on_host(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Act as host `name`: its own data folder, the same data store."""
    monkeypatch.setenv("KTRDR_DATA_DIR", str(tmp_path / f"{name}_host"))


def imported_on_another_host(bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """KTRDR_DATA_URL set, and REV's first STORED bars imported by the host `other`; returns the data store."""
    store = tmp_path / "store"
    monkeypatch.setenv("KTRDR_DATA_URL", store.as_uri())
    on_host("other", monkeypatch, tmp_path)
    first = write_csv(tmp_path / "first.csv", bars.iloc[:STORED])
    assert invoke("data", "import", str(first), "--symbol", "rev", "--timeframe", "1d").exit_code == 0
    return store


def fixed_end(symbol: str) -> str | None:
    """The research end the operations database holds for `symbol` 1d now; None when none is fixed."""
    cut = series_cut(get_store(get_settings().database_url), symbol=symbol, timeframe="1d")
    return cut.series_end if cut is not None else None


def test_an_append_before_any_cycle_fixes_the_series_and_its_universes_end_before_its_first_bar(
    imported: Path, bars: pd.DataFrame, tmp_path: Path
) -> None:
    # Given REV, and a universe DUO holding it, on which no cycle has fixed an end yet
    store_bars(bars.iloc[:STORED], symbol="OTH", timeframe="1d", data_dir=data_dir())
    create_universe("DUO", timeframe="1d", symbols=["REV", "OTH"], data_dir=data_dir())
    assert fixed_end("REV") is None and fixed_end("DUO") is None
    # When 20 bars are appended to REV
    assert append(write_csv(tmp_path / "new.csv", bars.iloc[STORED:])).exit_code == 0
    # Then REV's and DUO's ends are fixed at REV's last bar before them: the appended bars are forward bars
    assert fixed_end("REV") == fixed_end("DUO") == str(bars.index[STORED - 1])
    # And when REV is imported anew, it is a new series: no end fixed for it or DUO, no appended range recorded
    result = invoke(
        "data", "import", str(write_csv(tmp_path / "all.csv", bars)), "--symbol", "rev", "--timeframe", "1d"
    )
    assert result.exit_code == 0, result.output
    assert fixed_end("REV") is None and fixed_end("DUO") is None
    assert json.loads((data_dir() / "REV_1d.appended.json").read_text())["ranges"] == []


def test_an_append_whose_publish_failed_is_published_by_the_next_run_though_nothing_is_new(
    bars: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given KTRDR_DATA_URL and REV imported from another host
    store = imported_on_another_host(bars, monkeypatch, tmp_path)
    # When this host appends 20 bars and the data store refuses every write after they are stored here
    on_host("this", monkeypatch, tmp_path)
    new = write_csv(tmp_path / "new.csv", bars.iloc[STORED:])
    with monkeypatch.context() as broken:
        broken.setattr(ArtifactStore, "put_file", refuse)
        failed = append(new)
    assert failed.exit_code == 1 and "refused" in failed.stderr
    assert len(load_bars("REV", "1d", store)) == STORED and not (store / "REV_1d.appended.json").exists()
    # Then the same command run again appends nothing, and publishes the series and its record it left behind
    again = append(new)
    assert again.exit_code == 0, again.output
    assert "Nothing to append" in again.stdout and "Published REV_1d.csv.gz to " in again.stdout
    assert len(load_bars("REV", "1d", store)) == WHOLE
    ranges = json.loads((store / "REV_1d.appended.json").read_text())["ranges"]
    assert [(r["start"], r["bars"]) for r in ranges] == [(str(bars.index[STORED]), 20)]
    # And once the store has them, a third run publishes nothing, and a worker's sync fetches the record too
    assert "Published" not in append(new).stdout
    on_host("worker", monkeypatch, tmp_path)
    reset_settings()
    assert "REV_1d.appended.json" in sync_series(ArtifactStore(store.as_uri()), data_dir())


def refuse(self: ArtifactStore, local: Path, url: str) -> str:
    raise StoreError(f"artifact store {self.url}: refused (test)")

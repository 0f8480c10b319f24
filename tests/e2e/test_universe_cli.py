"""`ktrdr data import --universe`, `ktrdr universe create` and `ktrdr data list` as a user drives them (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.shell import data_dir, invoke

pytestmark = pytest.mark.e2e

HEADER = "date,S00,S01,S02"
ROWS = ["2020-01-01,1,2,3", "2020-01-02,1.1,2.1,3.1", "2020-01-03,1.2,,3.2", "2020-01-06,1.3,2.2,3.3"]


def wide(tmp_path: Path, header: str = HEADER, rows: list[str] = ROWS) -> Path:
    path = tmp_path / "closes.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def stored() -> dict[str, bytes]:
    folder = data_dir()
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def listing() -> dict:
    result = invoke("data", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_import_a_universe_then_list_it(tmp_path: Path) -> None:
    result = invoke("data", "import", str(wide(tmp_path)), "--universe", "demo", "--timeframe", "1d")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Imported universe DEMO 1d: 3 symbols (DEMO.S00, DEMO.S01, DEMO.S02), 3 common")
    assert "close-only" in result.stdout
    payload = listing()
    demo = next(u for u in payload["universes"] if u["name"] == "DEMO")
    assert demo == {
        "name": "DEMO", "timeframe": "1d", "symbols": ["DEMO.S00", "DEMO.S01", "DEMO.S02"], "source": "user",
        "common_start": "2020-01-01 00:00:00", "common_end": "2020-01-06 00:00:00", "common_bars": 3,
        "close_only": True,
    }  # fmt: skip
    series = {row["symbol"]: row for row in payload["data"]}
    assert series["DEMO.S01"]["bars"] == 3 and series["DEMO.S01"]["close_only"] is True
    assert series["EURUSD"]["close_only"] is False  # a key added; the old ones stay as they were
    assert {"symbol", "timeframe", "start", "end", "bars", "source", "path", "warnings"} <= set(series["EURUSD"])


def test_the_bundled_sp500_20_is_there_on_a_fresh_machine() -> None:
    universe = next(u for u in listing()["universes"] if u["name"] == "SP500_20")
    assert universe["source"] == "bundled" and universe["close_only"] is True and len(universe["symbols"]) == 20
    assert (universe["common_start"], universe["common_bars"]) == ("1990-01-02 00:00:00", 8313)
    assert stored() == {}  # listing wrote nothing
    table = invoke("data", "list")
    assert table.exit_code == 0, table.output
    line = next(line for line in table.stdout.splitlines() if "SP500_20" in line)
    assert "20: AAPL, AMD" in line and "8313" in line and "yes" in line and "bundled" in line


def test_a_universe_that_exists_is_refused_unless_replace(tmp_path: Path) -> None:
    args = ("data", "import", str(wide(tmp_path)), "--universe", "demo", "--timeframe", "1d")
    assert invoke(*args).exit_code == 0
    before = stored()
    again = invoke(*args)
    assert again.exit_code == 1
    assert again.stderr == "Error: universe DEMO exists already (1d, 3 symbols): pass --replace\n"
    assert stored() == before
    replaced = invoke(*args, "--replace")
    assert replaced.exit_code == 0, replaced.output


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (HEADER, [*ROWS[:2], "2020-01-03,1.2,3.2", ROWS[3]], "ragged file: line 4 has 3 fields, the header has 4"),
        (HEADER, [r.rsplit(",", 1)[0] + "," for r in ROWS], "S02 has no bars in the common range of the other symbols"),
        ("date,S00,S01,S01", ROWS, "duplicate symbol 'S01' in the header (columns 3 and 4)"),
        (HEADER, [*ROWS[:3], "2020-01-06,1.3,x2.2,3.3"], "non-numeric price 'x2.2' for S01 on line 5"),
    ],
    ids=["ragged", "no-common-bars", "duplicate", "non-numeric"],
)
def test_bad_input_is_one_line_exit_1_and_nothing_written(
    tmp_path: Path, header: str, rows: list[str], message: str
) -> None:
    result = invoke("data", "import", str(wide(tmp_path, header, rows)), "--universe", "demo", "--timeframe", "1d")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}") and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and stored() == {}


@pytest.mark.parametrize(
    "extra",
    [["--symbol", "X", "--universe", "Y"], [], ["--symbol", "X", "--replace"]],
    ids=["both", "neither", "replace"],
)
def test_import_takes_a_symbol_or_a_universe(tmp_path: Path, extra: list[str]) -> None:
    result = invoke("data", "import", str(wide(tmp_path)), "--timeframe", "1d", *extra)
    assert result.exit_code == 2 and stored() == {}


def test_universe_create_groups_series_that_exist() -> None:
    result = invoke("universe", "create", "indices", "--timeframe", "1d", "--symbols", "SP500,nasdaq")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Created universe INDICES 1d: 2 symbols (SP500, NASDAQ), 5031 common bars")
    assert result.stdout.strip().endswith("OHLC")
    indices = next(u for u in listing()["universes"] if u["name"] == "INDICES")
    assert indices["close_only"] is False and indices["source"] == "user"
    missing = invoke("universe", "create", "fx", "--timeframe", "1h", "--symbols", "EURUSD,GBPUSD")
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no data for GBPUSD 1h")
    taken = invoke("universe", "create", "indices", "--timeframe", "1d", "--symbols", "SP500")
    assert taken.exit_code == 1 and "exists already" in taken.stderr


def fixed_end(symbol: str, timeframe: str = "1d") -> str | None:
    """The research end the operations database holds for `symbol` now; None when none is fixed."""
    from agent_pipeline.config import get_settings
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.series import series_cut

    cut = series_cut(get_store(get_settings().database_url), symbol=symbol, timeframe=timeframe)
    return cut.series_end if cut is not None else None


def test_universe_create_replace_drops_the_end_fixed_for_the_universe_but_not_its_series() -> None:
    from agent_pipeline.config import get_settings
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.series import fix_series_end

    # Given a universe of SP500 and NASDAQ whose first cycle fixed its end, and SP500's own
    assert invoke("universe", "create", "idx", "--timeframe", "1d", "--symbols", "SP500,NASDAQ").exit_code == 0
    store = get_store(get_settings().database_url)
    for symbol in ("IDX", "SP500"):
        fix_series_end(store, symbol=symbol, timeframe="1d", end="2010-01-04 00:00:00", cycle_id="op_first")
    # When the universe is replaced by SP500 alone
    result = invoke("universe", "create", "idx", "--timeframe", "1d", "--symbols", "SP500", "--replace")
    assert result.exit_code == 0, result.output
    # Then it is a new series of dates: its end goes, and its next cycle fixes another; SP500's bars did not change
    assert fixed_end("IDX") is None and fixed_end("SP500") == "2010-01-04 00:00:00"


def test_universe_create_replace_with_the_same_symbols_keeps_the_end_fixed_for_it() -> None:
    from agent_pipeline.config import get_settings
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.series import fix_series_end

    # Given a universe whose first cycle fixed its end
    assert invoke("universe", "create", "same", "--timeframe", "1d", "--symbols", "SP500,NASDAQ").exit_code == 0
    store = get_store(get_settings().database_url)
    fix_series_end(store, symbol="SAME", timeframe="1d", end="2010-01-04 00:00:00", cycle_id="op_first")
    # When it is replaced by the same symbols, in another order
    result = invoke("universe", "create", "same", "--timeframe", "1d", "--symbols", "NASDAQ,SP500", "--replace")
    assert result.exit_code == 0, result.output
    # Then no date changed, and the end stays: bars appended since must not become research bars
    assert fixed_end("SAME") == "2010-01-04 00:00:00"

"""`ktrdr data synth --universe` as a user drives it: a planted universe that `data list` shows (issue 24)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.shell import data_dir, invoke

pytestmark = pytest.mark.e2e

PLANT = ("data", "synth", "--universe", "planted", "--size", "3", "--kind", "reversal", "--strength", "1.5")
SMALL = ("--seed", "7", "--correlation", "0.3", "--bars", "300")


def stored() -> dict[str, bytes]:
    folder = data_dir()
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def test_synth_a_universe_then_list_it() -> None:
    result = invoke(*PLANT, *SMALL)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Synthesised universe PLANTED 1d: 3 symbols (PLANTED.S00, PLANTED.S01, PLANTED.S02), 300 common bars"
    )
    assert "Kind reversal, strength 1.5, correlation 0.3, seed 7" in result.stdout
    assert "Rule Sharpe, mean of 3 symbols:" in result.stdout
    listing = invoke("data", "list", "--json")
    assert listing.exit_code == 0, listing.output
    payload = json.loads(listing.stdout)
    planted = next(u for u in payload["universes"] if u["name"] == "PLANTED")
    assert planted["source"] == "user" and planted["close_only"] is False and planted["common_bars"] == 300
    series = {row["symbol"]: row for row in payload["data"] if row["symbol"].startswith("PLANTED.")}
    assert sorted(series) == ["PLANTED.S00", "PLANTED.S01", "PLANTED.S02"]
    assert all(row["synth_kind"] == "reversal" and row["bars"] == 300 for row in series.values())
    sidecar = json.loads((data_dir() / "PLANTED.S01_1d.synth.json").read_text())
    assert (sidecar["kind"], sidecar["strength"], sidecar["seed"], sidecar["correlation"]) == ("reversal", 1.5, 7, 0.3)


def test_a_taken_name_is_refused_unless_replace() -> None:
    assert invoke(*PLANT, *SMALL).exit_code == 0
    before = stored()
    again = invoke(*PLANT, *SMALL)
    assert again.exit_code == 1
    assert again.stderr == "Error: universe PLANTED exists already (1d, 3 symbols): pass --replace\n"
    assert stored() == before
    replaced = invoke(*PLANT, *SMALL, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert stored() == before  # the same recipe makes the same files


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--universe", "u", "--size", "1"], "a synthetic universe needs 2 to 500 symbols, got 1"),
        (["--universe", "u", "--size", "501"], "a synthetic universe needs 2 to 500 symbols, got 501"),
        (["--universe", "u", "--size", "3", "--correlation", "1"], "correlation must be in [0, 1), got 1.0"),
        (["--universe", "u", "--size", "3", "--correlation", "-0.2"], "correlation must be in [0, 1), got -0.2"),
        (["--universe", "a.b", "--size", "3"], "invalid universe name 'a.b': must match ^[A-Za-z0-9_-]{1,20}$"),
        (
            ["--universe", "u", "--size", "3", "--kind", "sideways"],
            "unknown kind 'sideways': must be one of trend, reversal, noise",
        ),
    ],
)
def test_a_bad_request_is_one_line_exit_1_and_writes_nothing(options: list[str], message: str) -> None:
    result = invoke("data", "synth", "--kind", "trend", "--strength", "1", "--seed", "1", "--bars", "300", *options)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.output and stored() == {}


@pytest.mark.parametrize(
    "options",
    [["--symbol", "x", "--universe", "u", "--size", "3"], [], ["--universe", "u"], ["--symbol", "x", "--size", "3"]],
    ids=["both", "neither", "no-size", "size-without-universe"],
)
def test_synth_takes_a_symbol_or_a_universe_with_its_size(options: list[str]) -> None:
    result = invoke("data", "synth", "--kind", "trend", "--strength", "1", "--seed", "1", *options)
    assert result.exit_code == 2 and "Traceback" not in result.output and stored() == {}


def test_a_replaced_universe_is_a_new_series_its_fixed_ends_dropped() -> None:
    from agent_pipeline.config import get_settings
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.series import fix_series_end, series_cut

    # Given a planted universe whose first cycle fixed its end and its symbols'
    assert invoke(*PLANT, *SMALL).exit_code == 0
    store = get_store(get_settings().database_url)
    for symbol in ("PLANTED", "PLANTED.S00"):
        fix_series_end(store, symbol=symbol, timeframe="1d", end="2001-01-05 00:00:00", cycle_id="op_first")
    # When it is synthesised anew
    replaced = invoke(*PLANT, "--seed", "8", "--bars", "300", "--replace")
    assert replaced.exit_code == 0, replaced.output
    # Then no end is fixed for it or its symbols: the bars they were fixed on are gone
    assert series_cut(store, symbol="PLANTED", timeframe="1d") is None
    assert series_cut(store, symbol="PLANTED.S00", timeframe="1d") is None

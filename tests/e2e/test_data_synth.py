"""`ktrdr data synth` as a user drives it: a planted-edge series that `data list` and `load_bars` see."""

from __future__ import annotations

import json

import pytest

from agent_pipeline.config import get_settings
from agent_pipeline.engine.data import load_bars
from agent_pipeline.engine.synth import rule_sharpe
from agent_pipeline.engine.walkforward import lockbox_start
from tests.e2e.shell import data_dir, invoke

pytestmark = pytest.mark.e2e


def listed(symbol: str) -> dict:
    result = invoke("data", "list", "--json")
    assert result.exit_code == 0, result.output
    return next(row for row in json.loads(result.stdout)["data"] if row["symbol"] == symbol)


def test_synth_writes_a_series_that_list_shows_with_its_rule_sharpes() -> None:
    result = invoke("data", "synth", "--kind", "reversal", "--strength", "1.5", "--seed", "5", "--symbol", "syn_rev")
    assert result.exit_code == 0, result.output
    assert "Wrote 5031 bars of SYN_REV 1d" in result.stdout
    row = listed("SYN_REV")
    assert row["source"] == "user" and row["bars"] == 5031 and row["synth_kind"] == "reversal"
    bars = load_bars("SYN_REV", "1d", data_dir())
    research = bars.iloc[: lockbox_start(len(bars), get_settings().lockbox_fraction)]
    assert row["rule_research_sharpe"] == pytest.approx(rule_sharpe("reversal", research), abs=1e-6)
    assert isinstance(row["rule_lockbox_sharpe"], float)
    sidecar = json.loads((data_dir() / "SYN_REV_1d.synth.json").read_text())
    assert sidecar["strength"] == 1.5 and sidecar["seed"] == 5 and "contrarian" in sidecar["rule"]
    assert listed("SP500")["rule_research_sharpe"] is None


def test_the_table_shows_the_rule_sharpes() -> None:
    args = ("--strength", "1", "--seed", "2", "--symbol", "syn_tr", "--bars", "600")
    assert invoke("data", "synth", "--kind", "trend", *args).exit_code == 0
    result = invoke("data", "list")
    assert result.exit_code == 0, result.output
    assert "Rule Sharpe (research)" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "SYN_TR" in line)
    assert "trend" in line and f"{listed('SYN_TR')['rule_research_sharpe']:.2f}" in line


def test_the_same_seed_writes_the_same_file() -> None:
    args = ("data", "synth", "--kind", "trend", "--strength", "1", "--seed", "9", "--symbol", "twice")
    assert invoke(*args).exit_code == 0
    first = (data_dir() / "TWICE_1d.csv.gz").read_bytes()
    assert invoke(*args).exit_code == 0
    assert (data_dir() / "TWICE_1d.csv.gz").read_bytes() == first


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--kind", "sideways", "--strength", "1"], "unknown kind 'sideways'"),
        (["--kind", "trend", "--strength", "-1"], "strength must be"),
        (["--kind", "reversal", "--strength", "4.5"], "strength must be"),
        (["--kind", "noise", "--strength", "1"], "noise has no edge"),
    ],
)
def test_a_bad_request_is_one_line_exit_1_and_writes_nothing(options: list[str], message: str) -> None:
    result = invoke("data", "synth", *options, "--seed", "1", "--symbol", "bad")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not data_dir().exists() or list(data_dir().iterdir()) == []

"""An append never moves a series' lockbox (issue 27): the next cycle's research period and lockbox are the dates
the series' first cycle fixed, in the embedded `ktrdr agent run` as a user drives it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.shell import clean_env, ktrdr
from tests.forward import forward_csv, reversal_strategy

pytestmark = pytest.mark.e2e

SYMBOL = "CUT"


def test_a_cycle_after_an_append_has_the_first_cycles_research_period_and_lockbox(tmp_path: Path) -> None:
    # Given a fresh home with a planted reversal, and a first cycle of a user's strategy on it
    home = tmp_path / "home"
    env = clean_env(KTRDR_HOME=str(home), KTRDR_TRAINING_EPOCHS="2")
    synth = ("data", "synth", "--kind", "reversal", "--strength", "3.0", "--seed", "5", "--symbol", SYMBOL)
    assert ktrdr(*synth, "--timeframe", "1d", "--bars", "1200", env=env, cwd=tmp_path).returncode == 0
    first = reversal_strategy(home / "data", tmp_path, SYMBOL, epochs=2, hidden=16)
    run = ktrdr(
        "agent",
        "run",
        "--bypass-gates",
        "--strategy",
        str(first),
        "--home",
        str(home),
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # When 120 forward bars are appended and a second strategy (another model: its own lockbox read) runs
    csv = forward_csv(home / "data", SYMBOL, 120, tmp_path / "forward.csv")
    appended = ktrdr("data", "append", str(csv), "--symbol", SYMBOL, "--timeframe", "1d", env=env, cwd=tmp_path)
    assert appended.returncode == 0, appended.stderr
    second = reversal_strategy(home / "data", tmp_path, SYMBOL, epochs=2, hidden=12)
    run = ktrdr(
        "agent",
        "run",
        "--bypass-gates",
        "--strategy",
        str(second),
        "--home",
        str(home),
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Then both cycles were evaluated up to the same fixed end, with the same research period and lockbox dates
    listed = ktrdr("operations", "list", "--type", "agent_research", "--json", env=env, cwd=tmp_path)
    later, earlier = json.loads(listed.stdout)["data"]
    ends = {cycle["metadata"]["evaluation"]["series_end"] for cycle in (earlier, later)}
    assert len(ends) == 1, ends
    for key in ("research_start", "research_end"):
        assert (
            later["metadata"]["training_result"]["walk_forward"][key]
            == (earlier["metadata"]["training_result"]["walk_forward"][key])
        )
    boxes = [cycle["result_summary"]["lockbox"] for cycle in (earlier, later)]
    assert "repeat_of" not in boxes[1], boxes
    assert [(box["start"], box["end"], box["n_bars"]) for box in boxes][0] == (
        boxes[1]["start"], boxes[1]["end"], boxes[1]["n_bars"],
    )  # fmt: skip
    assert boxes[0]["end"] == ends.pop()

"""`ktrdr paper` in the embedded default, as a user drives it (issue 27): a cycle's final model traded on paper over
bars appended after it, each bar booked once however often `ktrdr paper step` runs.

The cycle is `ktrdr agent run` from a fresh shell; the paper and data commands run in this process (`invoke`: the same
click commands, without a new interpreter's start-up for each of the fifteen). The cycle is no discovery (a discovery
needs the series' PBO over KTRDR_PBO_MIN_TRIALS cycles): the test checks the one-line refusal, then opens the account
with --force. The stack test (test_paper_stack.py) trades a promoted discovery.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.shell import clean_env, invoke, ktrdr
from tests.forward import forward_csv, reversal_strategy

pytestmark = pytest.mark.e2e

SYMBOL = "PCLI"


def run(*args: str) -> Any:
    done = invoke(*args, "--json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["data"]


def append(csv: Path) -> None:
    done = invoke("data", "append", str(csv), "--symbol", SYMBOL, "--timeframe", "1d")
    assert done.exit_code == 0, done.output


def test_paper_start_step_status_list_and_stop_in_the_embedded_default(tmp_path: Path, isolated_settings: Path) -> None:
    # Given a fresh home, a planted reversal and a completed cycle of a user's strategy on it
    home = isolated_settings
    env = clean_env(KTRDR_HOME=str(home), KTRDR_TRAINING_EPOCHS="3")
    synth = ("data", "synth", "--kind", "reversal", "--strength", "3.0", "--seed", "5", "--symbol", SYMBOL)
    assert invoke(*synth, "--timeframe", "1d", "--bars", "1200").exit_code == 0
    strategy = reversal_strategy(home / "data", tmp_path, SYMBOL, epochs=3)
    cycle = ktrdr("agent", "run", "--bypass-gates", "--strategy", str(strategy), env=env, cwd=tmp_path, timeout=120)
    assert cycle.returncode == 0, cycle.stdout + cycle.stderr
    cycle_id = re.search(r"Research cycle 1/1: (op_agent_research_\S+)", cycle.stdout).group(1)  # type: ignore[union-attr]
    # When a paper account is asked for: refused with one line (no discovery), then opened with --force
    refused = invoke("paper", "start", cycle_id)
    refusal = rf"Error: cycle {cycle_id} is not a discovery \((a|not a) candidate\): paper trading starts from " + (
        "discoveries; --force opens it anyway"
    )
    assert refused.exit_code == 1 and re.fullmatch(refusal, refused.stderr.strip()), refused.stderr
    account = run("paper", "start", cycle_id, "--force", "--capital", "2500")
    assert (account["state"], account["bars"], account["equity"], account["mode"]) == ("open", 0, 2500.0, "paper")
    # Then a step before any new bar books nothing
    assert [s["booked"] for s in run("paper", "step")] == [0]
    # When 50 forward bars are appended and the step runs twice (as a restart would)
    csv = forward_csv(home / "data", SYMBOL, 50, tmp_path / "forward.csv")
    append(csv)
    assert [s["booked"] for s in run("paper", "step", account["id"])] == [50]
    assert [s["booked"] for s in run("paper", "step")] == [0]
    # Then its status has the 50 bars once, its equity and state, and the list shows it
    status = run("paper", "status", account["id"])
    assert (status["state"], status["bars"]) == ("open", 50) and isinstance(status["equity"], float)
    assert status["first_bar"] > status["start_after"] and status["fills"]
    assert [a["id"] for a in run("paper", "list")] == [account["id"]]
    shown = invoke("paper", "status", account["id"])
    assert "paper only" in shown.stdout and "50 forward bars booked" in shown.stdout, shown.stdout
    # When it is stopped and more bars arrive, it books none of them
    stopped = run("paper", "stop", account["id"])
    assert stopped["state"] == "stopped"
    more = forward_csv(home / "data", SYMBOL, 10, tmp_path / "more.csv", seed=3)
    append(more)
    assert run("paper", "step") == []
    assert run("paper", "status", account["id"])["bars"] == 50
    missing = invoke("paper", "status", "paper_nope")
    assert missing.exit_code == 1 and missing.stderr.strip() == "Error: paper account not found: paper_nope"

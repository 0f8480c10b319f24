"""Evaluation you can trust, as a user drives it: the lockbox never reaches the loop, a random walk yields no
discovery, and the evidence counts every trial."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent_pipeline.engine.data import random_walk_bars
from agent_pipeline.store.operations import OperationsStore, OperationType
from tests.e2e.shell import clean_env, ktrdr
from tests.fake_anthropic import FakeAnthropic

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A number that appears nowhere else: if it shows up in a prompt, a memory or a study, the lockbox leaked.
SENTINEL = 987.654321
STRATEGY = {
    "name": "leak_probe",
    "description": "RSI regimes",
    "hypothesis": "Stretched RSI reverts.",
    "symbol": "EURUSD",
    "timeframe": "1h",
    "indicators": [{"type": "rsi", "period": 14}],
    "fuzzy_sets": {
        "rsi_14": {
            "low": {"type": "triangular", "parameters": [0, 20, 40]},
            "high": {"type": "triangular", "parameters": [60, 80, 100]},
        }
    },
    "labels": {"zigzag_threshold": 0.003, "lookahead": 12},
}
ASSESSMENT = {
    "verdict": "poor",
    "strengths": ["It ran", "It is small"],
    "weaknesses": ["No edge", "Few trades"],
    "suggestions": ["Try trend filters", "Widen the labels"],
}


def plant_lockbox_sentinel(home: Path) -> str:
    """A finished earlier cycle on EURUSD 1h whose lockbox result (and only that) holds the sentinel."""
    store = OperationsStore(f"sqlite:///{home / 'ktrdr.db'}")
    store.upgrade()
    metadata = {
        "strategy_name": "earlier",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "designer": "offline",
        "training_result": {"accuracy": 0.5, "balanced_accuracy": 0.41, "final_loss": 0.7, "initial_loss": 1.1},
        "backtest_result": {"sharpe_ratio": 0.3, "num_trades": 40, "total_return": 0.02, "deflated_sharpe": 0.1},
    }
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=metadata)
    store.start(cycle.operation_id)
    lockbox = {k: SENTINEL for k in ("total_return", "buy_and_hold_return", "sharpe_ratio")}
    store.complete(
        cycle.operation_id,
        result_summary={**metadata, "discovery": False, "lockbox": {**lockbox, "start": "x", "end": "y"}},
    )
    return cycle.operation_id


def test_a_lockbox_sentinel_reaches_no_prompt_memory_gate_assessor_or_study(tmp_path: Path) -> None:
    # Given an earlier cycle whose lockbox result holds a sentinel value
    home = tmp_path / "home"
    home.mkdir()
    planted = plant_lockbox_sentinel(home)
    # When a Claude-designed, Claude-assessed cycle runs (the real SDK against a scripted endpoint) ...
    with FakeAnthropic() as server:
        server.reply_tool_use("submit_strategy", STRATEGY, input_tokens=1000, output_tokens=300)
        server.reply_tool_use("submit_assessment", ASSESSMENT, input_tokens=900, output_tokens=200)
        env = clean_env(
            KTRDR_TRAINING_EPOCHS="2",
            ANTHROPIC_API_KEY="sk-ant-test-0123456789",
            ANTHROPIC_BASE_URL=server.url,
            KTRDR_DESIGNER="anthropic",
        )
        done = ktrdr("agent", "run", "--bypass-gates", "--home", str(home), env=env, cwd=tmp_path)
        prompts = json.dumps(server.bodies)
    # ... and then an offline-designed one (its memory and study read the same rows)
    offline = clean_env(KTRDR_TRAINING_EPOCHS="2", KTRDR_DESIGNER="offline")
    again = ktrdr(
        "agent", "run", "--bypass-gates", "--symbol", "EURUSD", "--timeframe", "1h", "--home", str(home),
        env=offline, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    # Then the earlier cycle really was in the memory the prompts carried (the probe can see what it should) ...
    assert len(server.requests) == 2 and "earlier" in json.dumps(server.bodies[0])
    # ... but its lockbox figure reached no prompt (designer or assessor)
    assert str(SENTINEL) not in prompts
    # And in the whole database the sentinel sits only in the planted cycle's own rows: not in the new cycles'
    # metadata (what the gates and the assessor read), not in the optimiser's study tables
    with sqlite3.connect(home / "ktrdr.db") as db:
        leaked = [line for line in db.iterdump() if str(SENTINEL) in line and planted not in line]
    assert leaked == []
    # And each new cycle traded its own lockbox, shown to people only
    report = done.stdout + again.stdout
    assert report.count("lockbox (never seen by the loop)") == 2


def random_walk_csv(path: Path) -> Path:
    """A driftless random walk (no strategy has an edge on it, by construction), as a CSV to import."""
    random_walk_bars(1800, seed=11, start="2010-01-04").to_csv(path, index=False)
    return path


def test_a_random_walk_gives_no_discovery_and_the_evidence_counts_every_trial(tmp_path: Path) -> None:
    # Given a random walk imported as a user would
    home = tmp_path / "home"
    env = clean_env(KTRDR_TRAINING_EPOCHS="3", KTRDR_HOME=str(home), KTRDR_DESIGNER="offline")
    imported = ktrdr(
        "data", "import", str(random_walk_csv(tmp_path / "rw.csv")), "--symbol", "RWALK", "--timeframe", "1d",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    # When several cycles research it, gates bypassed so that every one is backtested
    run = ktrdr(
        "agent", "run", "--cycles", "3", "--bypass-gates", "--symbol", "RWALK", "--timeframe", "1d",
        "--home", str(home), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("Discovery        no") == 3
    # Then the evidence counts the three trials, has an SPA p-value, and lists no discovery
    shown = ktrdr("agent", "evidence", "--symbol", "RWALK", "--json", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    (series,) = json.loads(shown.stdout)["series"]
    assert (series["symbol"], series["timeframe"], series["trials"]) == ("RWALK", "1d", 3)
    assert series["discoveries"] == []
    assert 0.0 <= series["spa_pvalue"] <= 1.0 and series["spa_models"] == 3
    assert [t["deflated_sharpe"] < 0.95 for t in series["best"]] == [True, True, True]

"""`ktrdr agent replay CYCLE_ID` (issue 25): a cycle trained and backtested again from its record gives the same
figures bit for bit on the CPU, reads no lockbox, follows the bars it used past bars appended later, and refuses
when one of them changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from agent_pipeline.engine.data import load_bars, store_bars
from agent_pipeline.store.operations import OperationsStore, OperationType
from tests.cycles import cycle_with_artifacts, finished_cycle
from tests.e2e.shell import clean_env, invoke, ktrdr
from tests.stack import OPEN_GATES, QUICK, Stack, finished, start_stack, wait_until

pytestmark = pytest.mark.e2e

SYMBOL = "SYNTH"


def rewrite_series(data_dir: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Store SYMBOL's bars again after `change` (as `ktrdr data import` would store them)."""
    store_bars(change(load_bars(SYMBOL, "1d", data_dir)), symbol=SYMBOL, timeframe="1d", data_dir=data_dir)


def appended(bars: pd.DataFrame) -> pd.DataFrame:
    """Thirty more business days, repeating the last month's bars."""
    extra = bars.iloc[-30:].copy()
    extra.index = pd.bdate_range(bars.index[-1] + pd.offsets.BDay(), periods=30, name=bars.index.name)
    return pd.concat([bars, extra])


def one_research_bar_raised(bars: pd.DataFrame) -> pd.DataFrame:
    bars.iloc[100, :4] *= 1.01  # open, high, low and close: the bar stays valid
    return bars


@pytest.mark.slow
def test_an_embedded_cycle_replays_identically_reads_no_lockbox_and_refuses_changed_bars(tmp_path: Path) -> None:
    # Given a private home with a series of the user's, and one cycle run on it to its end
    home = tmp_path / "home"
    env = clean_env(KTRDR_HOME=str(home), KTRDR_TRAINING_EPOCHS="2", KTRDR_WALK_FORWARD_FOLDS="2")
    synth = ("data", "synth", "--kind", "trend", "--strength", "1.5", "--seed", "3", "--symbol", SYMBOL)
    assert ktrdr(*synth, "--bars", "1500", env=env, cwd=tmp_path).returncode == 0
    done = ktrdr("agent", "run", "--bypass-gates", "--symbol", SYMBOL, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    store = OperationsStore(f"sqlite:///{home / 'ktrdr.db'}")
    (cycle,) = store.list(operation_type=OperationType.AGENT_RESEARCH)
    store.engine.dispose()
    # When it is replayed
    replayed = ktrdr("agent", "replay", cycle.operation_id, env=env, cwd=tmp_path)
    # Then every figure matches bit for bit, the backtest's DSR over the recorded trials included
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.splitlines()[-1] == "identical"
    assert "Figures compared bit for bit:" in replayed.stdout and "backtest deflated_sharpe" in replayed.stdout
    # And the lockbox log holds the cycle's own read only: a replay is no lockbox read
    reads = json.loads(ktrdr("agent", "lockbox-log", "--json", env=env, cwd=tmp_path).stdout)["data"]
    assert [read["cycle_id"] for read in reads] == [cycle.operation_id]
    # When bars are appended to the series, the replay trains on the series as the cycle had it: identical
    rewrite_series(home / "data", appended)
    again = ktrdr("agent", "replay", cycle.operation_id, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "identical", again.stdout + again.stderr
    # When one research bar changes, the replay refuses with the checksums, in one line and before any figure
    rewrite_series(home / "data", one_research_bar_raised)
    refused = ktrdr("agent", "replay", cycle.operation_id, env=env, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("Error: bars changed since the cycle: sha256 ")
    assert refused.stderr.count("\n") == 1 and " != " in refused.stderr and "Traceback" not in refused.stderr


def test_replay_refuses_an_unknown_an_unfinished_and_an_unrecorded_cycle_in_one_line(
    sqlite_store: OperationsStore, tmp_path: Path
) -> None:
    # Given a running cycle, a finished one with no training, and one whose training ran before replay records
    running = sqlite_store.create_cycle(max_active=10).operation_id
    untrained = finished_cycle(sqlite_store, "cancelled")
    old = cycle_with_artifacts(sqlite_store, tmp_path / "backtest")
    cases = {
        "op_agent_research_nope": "unknown cycle op_agent_research_nope",
        running: f"cycle {running} has not finished (pending): replay it once it has",
        untrained: f"cycle {untrained} has no finished training to replay",
        old: f"cycle {old} has no replay record (it ran before replays were recorded)",
    }
    for cycle_id, message in cases.items():
        # When each is replayed
        result = invoke("agent", "replay", cycle_id)
        # Then it is refused with one line naming why, and no traceback
        assert (result.exit_code, result.stderr, result.stdout) == (1, f"Error: {message}\n", ""), cycle_id


@pytest.mark.slow
@pytest.mark.integration
def test_a_cycle_on_the_real_stack_replays_identically_in_process(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.lockbox import list_reads
    from agent_pipeline.store.operations import OperationStatus, get_store

    # Given the full stack (Postgres, Redis, a research and a gpu worker) and one cycle run on its workers
    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK, KTRDR_WALK_FORWARD_FOLDS="2")
    cycle_id = cycle.trigger().operation_id
    final = wait_until(finished(cycle_id), timeout=240)
    assert final.status == OperationStatus.COMPLETED, (final.error_message, stack.log("research")[-2000:])
    # When this process replays it from the same database and home
    result = invoke("agent", "replay", cycle_id)
    # Then the figures the GPU worker and the backtest recorded come out again, bit for bit
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "identical"
    assert "trained on cpu, replayed on cpu" in result.stdout
    # And the lockbox was read once, by the cycle itself
    assert [read.cycle_id for read in list_reads(get_store())] == [cycle_id]

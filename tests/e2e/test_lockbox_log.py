"""The lockbox's read log on the real stack (issue 25): a cycle's lockbox read appears in `ktrdr agent lockbox-log`,
and the same strategy and model cannot read it again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.shell import ktrdr, ktrdr_env
from tests.stack import OPEN_GATES, QUICK, finished, start_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def test_a_cycles_lockbox_read_appears_in_the_log_once(make_stack, monkeypatch, tmp_path: Path) -> None:
    from agent_pipeline.engine.artifacts import digest, fetch
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus
    from agent_pipeline.tasks.base import strategy_file
    from agent_pipeline.tasks.cycle import _trade_lockbox

    # Given the full stack, and one cycle that ran to the end
    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK)
    cycle_id = cycle.trigger().operation_id
    final = wait_until(finished(cycle_id), timeout=240)
    assert final.status == OperationStatus.COMPLETED, (final.error_message, stack.log("research")[-2000:])
    meta = final.record
    lockbox = (final.result_summary or {})["lockbox"]
    assert "error" not in lockbox and "repeat_of" not in lockbox and lockbox["n_bars"] > 0
    # When a user reads the log
    done = ktrdr("agent", "lockbox-log", "--json", "--symbol", str(meta.symbol), env=ktrdr_env(stack), cwd=tmp_path)
    # Then it holds the cycle's read: its series, its strategy document's and its final model's sha256
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["data"]
    assert (entry["cycle_id"], entry["symbol"], entry["timeframe"]) == (
        cycle_id,
        str(meta.symbol).upper(),
        meta.timeframe,
    )
    assert entry["strategy_checksum"] == digest(strategy_file(meta))
    assert entry["model_sha256"] == digest(fetch(str(meta.model_path)))
    # And a later cycle with the same strategy and model is refused: the first read is shown again, none logged
    assert _trade_lockbox("op_agent_research_later", meta) == {**lockbox, "repeat_of": cycle_id}
    again = ktrdr("agent", "lockbox-log", "--json", env=ktrdr_env(stack), cwd=tmp_path)
    assert [e["cycle_id"] for e in json.loads(again.stdout)["data"]] == [cycle_id]

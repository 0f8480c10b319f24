"""The user's acceptance bar: the spec's E2E commands and its verification script, run as written."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.shell import BIN, ktrdr_env, run_script
from tests.stack import OPEN_GATES, QUICK, start_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def test_spec_e2e_commands_report_a_training_gate_failure(make_stack, monkeypatch) -> None:
    # Given the full stack, with a training gate no model can pass
    stack = start_stack(make_stack, monkeypatch, TRAINING_GATE_MIN_ACCURACY="0.99", **QUICK)
    # When the spec's commands run as a user types them
    done = run_script("m3_e2e.sh", ktrdr_env(stack))
    # Then status is idle with the failed cycle, the training op is completed, and the error names the gate
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Status: idle" in out
    assert "failed" in out
    assert "Traceback" not in out + done.stderr
    training_rows = [line for line in out.splitlines() if "op_training_" in line]
    assert training_rows and "completed" in training_rows[0]
    assert "Training gate failed: accuracy_below_threshold" in out


def test_spec_e2e_commands_on_a_passing_cycle(make_stack, monkeypatch) -> None:
    stack = start_stack(make_stack, monkeypatch, **OPEN_GATES, **QUICK)
    done = run_script("m3_e2e.sh", ktrdr_env(stack))
    assert done.returncode == 0, done.stderr
    assert "Triggered research cycle op_agent_research_" in done.stdout
    assert [line for line in done.stdout.splitlines() if "op_training_" in line and "completed" in line]


def test_trigger_cycles_runs_cycles_back_to_back_on_the_workers(make_stack, monkeypatch) -> None:
    from agent_pipeline.store.operations import OperationType, get_store

    stack = start_stack(make_stack, monkeypatch, TRAINING_GATE_MIN_ACCURACY="0.99", **QUICK)
    done = subprocess.run(
        [str(BIN / "ktrdr"), "agent", "trigger", "--cycles", "2"],
        env=ktrdr_env(stack),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Research cycle 2/2" in done.stdout and "Research cycles" in done.stdout
    cycles = get_store().list(operation_type=OperationType.AGENT_RESEARCH)
    assert len(cycles) == 2 and all(c.status.is_finished for c in cycles)

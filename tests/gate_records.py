"""What a gate task records when it stops a cycle, for tests that build finished cycles by hand.

The gate task writes its verdict (`gates.Verdict.to_record`) under `training_gate` / `backtest_gate`, then
the chain's errback sets the spec's error message. Readers use the verdict only; a test that builds a stopped
cycle from its message gets both here.
"""

from __future__ import annotations

from typing import Any

from agent_pipeline.gates import Verdict


def gate_stop(error: str | None) -> dict[str, Any]:
    """`{"<gate>_gate": verdict record}` for a `Training gate failed: <code> (<detail>)` message, else `{}`."""
    for gate in ("training", "backtest"):
        prefix = f"{gate.capitalize()} gate failed: "
        if error and error.startswith(prefix):
            message = error[len(prefix) :]
            return {f"{gate}_gate": Verdict(gate, False, message.split(" (")[0], message).to_record()}
    return {}

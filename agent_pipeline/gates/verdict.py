"""A gate's decision as data, and what a cycle's recorded verdicts say: which gate stopped it, whether every gate
passed, and whether it is a candidate for discovery (the promotion step, `gates.promotion`, decides the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

PASSED = "passed"
# A strategy whose out-of-sample Deflated Sharpe Ratio reaches this (every gate passed) is a candidate: the probability
# that its true Sharpe exceeds the best that every trial on its series would reach by luck (Bailey & López de Prado,
# 2014). It becomes a discovery only through the promotion step (issue 25, `gates.promotion`).
DISCOVERY_DSR = 0.95


@dataclass(frozen=True)
class Verdict:
    """A gate's decision as data: the gate, whether it passed, its reason code, the figures it compared and the
    message (the spec's reason text, e.g. `loss_too_high (0.90 > 0.80)`; `passed` when it passed).

    The cycle records it under `training_gate` / `backtest_gate` (`to_record`), the chain-breaking exception
    carries it, and every reader (history, evidence, the optimiser, the report, the dashboard) reads its code
    instead of parsing a message. `bypassed`: it failed and `--bypass-gates` let the cycle go on.
    """

    gate: str  # `training` or `backtest`
    passed: bool
    code: str  # `passed`, or the failed check: `loss_too_high`, `no_skill`, `missing_metric` ...
    message: str
    figures: dict[str, float] = field(default_factory=dict)
    bypassed: bool = False

    @property
    def label(self) -> str:
        """`Training` or `Backtest`, as the spec's messages name the gate."""
        return self.gate.capitalize()

    @property
    def detail(self) -> str:
        """What the message shows in brackets after the code: the figures compared (`35% < 45%`)."""
        prefix = f"{self.code} ("
        return self.message[len(prefix) : -1] if self.message.startswith(prefix) else ""

    @property
    def error_message(self) -> str:
        """The cycle's error message when this verdict stops it: `Training gate failed: <reason>`."""
        return f"{self.label} gate failed: {self.message}"

    def to_record(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "code": self.code, "reason": self.message,
                "figures": dict(self.figures), "bypassed": self.bypassed}  # fmt: skip

    @classmethod
    def from_record(cls, key: str, record: Mapping[str, Any] | None) -> Verdict | None:
        """The verdict a cycle recorded under `key` (`training_gate` / `backtest_gate`), or None if it has none.

        Rows recorded before verdicts carried a code were given one by migration 0003."""
        if not record:
            return None
        passed = record.get("passed") is True
        return cls(
            gate=str(record.get("gate") or key.removesuffix("_gate")),
            passed=passed,
            code=str(record.get("code") or (PASSED if passed else "unknown")),
            message=str(record.get("reason") or ""),
            figures=dict(record.get("figures") or {}),
            bypassed=bool(record.get("bypassed")) and not passed,
        )


GATES = (("training_gate", "Training"), ("backtest_gate", "Backtest"))


class Recorded(Protocol):
    """What a cycle's verdicts are read from: its metadata mapping, or its typed record (`store.record`)."""

    def get(self, key: str, /) -> Any: ...


def verdicts(metadata: Recorded) -> list[Verdict]:
    """The gate verdicts a cycle recorded, in chain order (a gate that did not run has none)."""
    found = (Verdict.from_record(key, metadata.get(key)) for key, _ in GATES)
    return [verdict for verdict in found if verdict is not None]


def stopping_verdict(metadata: Recorded) -> Verdict | None:
    """The first gate verdict that failed, bypassed or not: the gate that stopped the cycle, or would have."""
    return next((verdict for verdict in verdicts(metadata) if not verdict.passed), None)


def gates_passed(metadata: Recorded) -> bool:
    """Both gates ran and passed. A failure that `--bypass-gates` let through is no pass."""
    found = verdicts(metadata)
    return len(found) == len(GATES) and all(verdict.passed for verdict in found)


def bypassed_gates(metadata: Recorded) -> list[tuple[str, str]]:
    """(label, what it would have said) for each gate that failed and was bypassed, in chain order."""
    return [(verdict.label, verdict.message) for verdict in verdicts(metadata) if verdict.bypassed]


def is_candidate(metadata: Recorded, deflated_sharpe: Any, *, completed: bool) -> bool:
    """A candidate passed every gate: the cycle completed, both gates passed (not bypassed), and its deflated
    Sharpe, judged over the series' trials, is at least DISCOVERY_DSR. The promotion step (`gates.promotion`)
    decides whether it is a discovery."""
    dsr = deflated_sharpe
    passed_dsr = isinstance(dsr, int | float) and not isinstance(dsr, bool) and dsr >= DISCOVERY_DSR
    return completed and passed_dsr and gates_passed(metadata)

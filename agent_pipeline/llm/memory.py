"""What past research cycles taught: the designer's memory, built by the caller from operations rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# How many cycles the summary lists as best / worst, and how many recent suggestions it quotes.
SUMMARY_BEST = 3
SUMMARY_WORST = 2
SUMMARY_SUGGESTIONS = 6


@dataclass(frozen=True)
class PastCycle:
    """One finished (or failed) research cycle, as plain data."""

    operation_id: str
    created_at: datetime
    status: str
    strategy_name: str | None = None
    strategy: dict[str, Any] | None = None
    error_message: str | None = None
    training_result: dict[str, Any] | None = None
    backtest_result: dict[str, Any] | None = None
    assessment: dict[str, Any] | None = None
    gate_failure: str | None = None  # the stopping gate's reason code (`accuracy_below_threshold`), as recorded
    gate_detail: str | None = None  # the figures it compared, as its message shows them (`35% < 45%`)

    @property
    def rank_key(self) -> tuple[int, float] | None:
        """Higher is better: backtested cycles by Sharpe rank above trained-only ones by accuracy."""
        sharpe = _number(self.backtest_result, "sharpe_ratio")
        if sharpe is not None:
            return (2, sharpe)
        accuracy = _number(self.training_result, "accuracy")
        if accuracy is not None:
            return (1, accuracy)
        return None

    def describe(self) -> str:
        """One line: name, data, indicators, labels and the results it got."""
        parts = [self.strategy_name or "(unnamed)"]
        if self.strategy:
            parts.append(_describe_strategy(self.strategy))
        parts.append(_describe_results(self))
        if self.error_message:
            parts.append(f"error: {self.error_message[:160]}")
        return " | ".join(p for p in parts if p)


@dataclass(frozen=True)
class ResearchMemory:
    """Every past cycle the designer may learn from, newest last (the caller's order is kept)."""

    cycles: tuple[PastCycle, ...] = ()

    @property
    def ranked(self) -> list[PastCycle]:
        """Cycles with results, best first."""
        scored = [c for c in self.cycles if c.rank_key is not None]
        return sorted(scored, key=lambda c: c.rank_key or (0, 0.0), reverse=True)

    def gate_failures(self) -> Counter[str]:
        """How often each gate reason ended a cycle."""
        return Counter(c.gate_failure for c in self.cycles if c.gate_failure)

    def recent_suggestions(self, limit: int = SUMMARY_SUGGESTIONS) -> list[str]:
        """The newest assessment suggestions, newest first, without repeats."""
        seen: list[str] = []
        for cycle in reversed(self.cycles):
            for item in (cycle.assessment or {}).get("suggestions", []) or []:
                if isinstance(item, str) and item not in seen:
                    seen.append(item)
        return seen[:limit]

    def summary(self, max_chars: int = 4000) -> str:
        """Compact text for a prompt: counts, best and worst results, gate failures, recent suggestions."""
        if not self.cycles:
            return "No past research cycles yet: this is the first design."
        lines = [self._counts_line()]
        ranked = self.ranked
        if ranked:
            best = ranked[: min(SUMMARY_BEST, max(1, len(ranked) - 1))]  # leave the worst out of the best
            lines.append("Best results:")
            lines += [f"- {c.describe()}" for c in best]
            worst = [c for c in reversed(ranked) if c not in best][:SUMMARY_WORST]
            if worst:
                lines.append("Worst results:")
                lines += [f"- {c.describe()}" for c in worst]
        failures = self.gate_failures()
        if failures:
            lines.append("Gate failures (reason x count, with an example):")
            lines += [f"- {reason} x{count}{self._example(reason)}" for reason, count in failures.most_common()]
        others = Counter(
            (c.error_message or "")[:120] for c in self.cycles if c.status == "failed" and not c.gate_failure
        )
        if others:
            lines.append("Other failures:")
            lines += [f"- {message or '(no message)'} x{count}" for message, count in others.most_common(3)]
        suggestions = self.recent_suggestions()
        if suggestions:
            lines.append("Recent assessment suggestions:")
            lines += [f"- {s[:200]}" for s in suggestions]
        return _clip("\n".join(lines), max_chars)

    def _counts_line(self) -> str:
        statuses = Counter(c.status for c in self.cycles)
        detail = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items()))
        return f"Past research cycles: {len(self.cycles)} ({detail})."

    def _example(self, reason: str) -> str:
        for cycle in reversed(self.cycles):
            if cycle.gate_failure == reason:
                name = cycle.strategy_name or "(unnamed)"
                return f", e.g. {name}" + (f" ({cycle.gate_detail})" if cycle.gate_detail else "")
        return ""


def _number(result: dict[str, Any] | None, key: str) -> float | None:
    value = (result or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _describe_strategy(document: dict[str, Any]) -> str:
    indicators = []
    for ind in document.get("indicators", []) or []:
        if isinstance(ind, dict):
            period = ind.get("period")
            indicators.append(f"{ind.get('type')}{'(' + str(period) + ')' if period is not None else ''}")
    labels = document.get("labels") or {}
    label_text = ""
    if isinstance(labels, dict) and labels:
        label_text = f" labels zigzag {labels.get('zigzag_threshold')} / {labels.get('lookahead')} bars"
    data = f"{document.get('symbol', '?')} {document.get('timeframe', '?')}"
    return f"{data} [{', '.join(indicators)}]{label_text}"


def _describe_results(cycle: PastCycle) -> str:
    parts = []
    training = cycle.training_result or {}
    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy")):
        if key in training:
            parts.append(f"{label} {_fmt(training.get(key))}")
    backtest = cycle.backtest_result or {}
    for key, label in (
        ("sharpe_ratio", "sharpe"),
        ("total_return", "return"),
        ("buy_and_hold_return", "buy&hold"),
        ("win_rate", "win rate"),
        ("max_drawdown", "drawdown"),
        ("num_trades", "trades"),
        ("deflated_sharpe", "deflated sharpe"),
    ):
        if key in backtest:
            parts.append(f"{label} {_fmt(backtest.get(key))}")
    verdict = (cycle.assessment or {}).get("verdict")
    if verdict:
        parts.append(f"verdict {verdict}")
    return ", ".join(parts) or f"status {cycle.status}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    marker = "\n... (truncated)"
    if max_chars <= len(marker):
        return text[:max_chars]
    return text[: max(0, max_chars - len(marker))].rsplit("\n", 1)[0] + marker

"""Which cycles of a series are discoveries now: one judgement for the evidence, the leaderboard and the report.

A discovery passed every gate: the cycle completed, both gates passed (a failure let through by `--bypass-gates`
is no pass), and its deflated Sharpe, recomputed over the series' *current* trials, is at least 0.95. Trials are
every cycle designed on the series, gate-stopped, bypassed and failed ones included, so a flag raised over two
trials may not survive twenty: each cycle's end judges its series again (`refresh_discoveries`), and rewrites the
flag on the cycles whose verdict changed, in the operation's `result_summary.discovery` and the leaderboard row.
`result_summary.discovery_at_run` keeps what the cycle was judged when it ran, so a withdrawn flag stays visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.orm import Session

from agent_pipeline.engine.stats import deflate_recorded
from agent_pipeline.gates import is_discovery
from agent_pipeline.store.history import CycleResultRow
from agent_pipeline.store.models import Operation, OperationRow, OperationStatus

if TYPE_CHECKING:
    from agent_pipeline.store.operations import OperationsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judgement:
    """One backtested cycle judged over its series' current trials."""

    deflated_sharpe: float | None
    discovery: bool


def judge(cycles: list[Operation], timeframe: str) -> dict[str, Judgement]:
    """Every backtested cycle of one series (all its cycles, any status), judged over all of them."""
    tested = [c for c in cycles if c.record.backtest_result]
    sharpes = [float(c.metadata["backtest_result"].get("sharpe_ratio") or 0.0) for c in tested]
    judged = {}
    for cycle in tested:
        dsr = deflate_recorded(
            cycle.metadata["backtest_result"], trials=len(cycles), sharpes=sharpes, timeframe=timeframe
        )
        completed = cycle.status == OperationStatus.COMPLETED
        judged[cycle.operation_id] = Judgement(dsr, is_discovery(cycle.metadata, dsr, completed=completed))
    return judged


def apply(session: Session, cycles: list[Operation], judged: dict[str, Judgement]) -> list[str]:
    """Rewrite the discovery flag of the completed cycles whose verdict changed; returns their ids."""
    changed = []
    for cycle in cycles:
        if cycle.status != OperationStatus.COMPLETED:
            continue
        verdict = cycle.operation_id in judged and judged[cycle.operation_id].discovery
        summary = dict(cycle.result_summary or {})
        if summary.get("discovery") is verdict:
            continue
        summary.setdefault("discovery_at_run", summary.get("discovery"))
        summary["discovery"] = verdict
        session.execute(
            update(OperationRow).where(OperationRow.operation_id == cycle.operation_id).values(result_summary=summary)
        )
        session.execute(
            update(CycleResultRow).where(CycleResultRow.operation_id == cycle.operation_id).values(discovery=verdict)
        )
        changed.append(cycle.operation_id)
    return changed


def refresh_discoveries(store: OperationsStore, symbol: str, timeframe: str) -> list[str]:
    """Judge the series again and rewrite the flags that changed (see the module docstring)."""
    cycles = store.series_cycles(symbol=symbol, timeframe=timeframe)
    judged = judge(cycles, timeframe)
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        changed = apply(session, cycles, judged)
    if changed:
        logger.info("discoveries judged again", extra={"symbol": symbol, "timeframe": timeframe, "changed": changed})
    return changed

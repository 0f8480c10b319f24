"""Which cycles of a series are candidates and discoveries now: one judgement for the evidence, the leaderboard and
the report.

A *candidate* passed every gate: the cycle completed, both gates passed (a failure let through by `--bypass-gates`
is no pass), and its deflated Sharpe, recomputed over the series' *current* trials, is at least 0.95. Trials are
every cycle designed on the series, gate-stopped, bypassed and failed ones included, so a candidate over two trials
may not survive twenty. A *discovery* is a candidate that the promotion step (issue 25, `gates.promotion`)
promoted: its series' probability of backtest overfitting is at most KTRDR_MAX_PBO and its purged combinatorial
paths (`cycle.record.paths`, trained once when it ran) hold up. Each cycle's end judges its series again
(`refresh_discoveries`, with the series' PBO measured then by its caller) and rewrites what changed on each
completed cycle: `result_summary.discovery`, `result_summary.promotion` (status, each test's figure and limit) and
the leaderboard row's flag. `result_summary.discovery_at_run` keeps what the cycle was judged when it ran, so a
withdrawn flag stays visible.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from agent_pipeline.config import get_settings
from agent_pipeline.engine.stats import deflate_recorded
from agent_pipeline.gates import Promotion, PromotionThresholds, is_candidate, judge_promotion
from agent_pipeline.store.history import CycleResultRow
from agent_pipeline.store.models import Operation, OperationRow, OperationStatus

if TYPE_CHECKING:
    from agent_pipeline.store.operations import OperationsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesOverfitting:
    """A series' probability of backtest overfitting now (`insight.evidence.overfitting_of`), or why there is none."""

    pbo: float | None
    reason: str | None = None


# What a judge knows of a series' PBO when nobody measured it (a migration, an old caller): a candidate stays one.
NOT_MEASURED = SeriesOverfitting(None, "not computed")


@dataclass(frozen=True)
class Judgement:
    """One backtested cycle judged over its series' current trials."""

    deflated_sharpe: float | None
    promotion: Promotion

    @property
    def candidate(self) -> bool:
        return self.promotion.status is not None

    @property
    def discovery(self) -> bool:
        return self.promotion.is_discovery

    def promotion_record(self) -> dict[str, Any] | None:
        """`result_summary.promotion`: the verdict of a candidate; None for a cycle that is no candidate."""
        return self.promotion.to_record() if self.candidate else None


def judge(
    cycles: list[Operation],
    timeframe: str,
    overfitting: SeriesOverfitting = NOT_MEASURED,
    thresholds: PromotionThresholds | None = None,
) -> dict[str, Judgement]:
    """Every backtested cycle of one series (all its cycles, any status), judged over all of them.

    Args:
        overfitting: the series' PBO over these cycles' out-of-sample returns; without it no candidate is promoted.
        thresholds: the promotion limits; None reads the settings.
    """
    tested = [c for c in cycles if c.record.backtest_result]
    sharpes = [float(c.record.backtest.get("sharpe_ratio") or 0.0) for c in tested]
    limits = thresholds or PromotionThresholds.from_settings(get_settings())
    judged = {}
    for cycle in tested:
        record = cycle.record
        dsr = deflate_recorded(record.backtest, trials=len(cycles), sharpes=sharpes, timeframe=timeframe)
        candidate = is_candidate(record, dsr, completed=cycle.status == OperationStatus.COMPLETED)
        promotion = judge_promotion(
            candidate=candidate, pbo=overfitting.pbo, pbo_reason=overfitting.reason, paths=record.paths,
            thresholds=limits,
        )  # fmt: skip
        judged[cycle.operation_id] = Judgement(dsr, promotion)
    return judged


def apply(session: Session, cycles: list[Operation], judged: dict[str, Judgement]) -> list[str]:
    """Rewrite the discovery flag and the promotion of the completed cycles whose judgement changed; returns their
    ids."""
    changed = []
    for cycle in cycles:
        if cycle.status != OperationStatus.COMPLETED:
            continue
        judgement = judged.get(cycle.operation_id)
        verdict = judgement is not None and judgement.discovery
        promotion = judgement.promotion_record() if judgement is not None else None
        summary = dict(cycle.result_summary or {})
        if summary.get("discovery") is verdict and summary.get("promotion") == promotion:
            continue
        if summary.get("discovery") is not verdict:
            summary.setdefault("discovery_at_run", summary.get("discovery"))
        summary["discovery"] = verdict
        if promotion is None:
            summary.pop("promotion", None)  # no longer a candidate (or never one): no promotion to show
        else:
            summary["promotion"] = promotion
        session.execute(
            update(OperationRow).where(OperationRow.operation_id == cycle.operation_id).values(result_summary=summary)
        )
        session.execute(
            update(CycleResultRow).where(CycleResultRow.operation_id == cycle.operation_id).values(discovery=verdict)
        )
        changed.append(cycle.operation_id)
    return changed


def refresh_discoveries(
    store: OperationsStore,
    symbol: str,
    timeframe: str,
    *,
    overfitting: Callable[[list[Operation]], SeriesOverfitting],
) -> list[str]:
    """Judge the series again and rewrite what changed (see the module docstring).

    Args:
        overfitting: measures the series' PBO over its cycles (the store cannot: the trials' returns are files that
            `insight.evidence` reads); the caller passes it in.
    """
    cycles = store.series_cycles(symbol=symbol, timeframe=timeframe)
    judged = judge(cycles, timeframe, overfitting(cycles))
    with store._session() as session:  # the store's session: its errors become DatabaseUnavailableError
        changed = apply(session, cycles, judged)
    if changed:
        logger.info("discoveries judged again", extra={"symbol": symbol, "timeframe": timeframe, "changed": changed})
    return changed

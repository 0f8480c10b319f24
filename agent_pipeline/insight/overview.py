"""The overview a person opens first: running cycles, the last finished ones, today's spend, the workers seen.

Served as JSON (`GET /api/v1/agent/overview`) and as the dashboard's first page (`/ui/`), from this one function.
Each figure is one indexed read (bench/bench_dashboard.py: under 200 ms with 10,000 finished cycles): the active
rows, one page of the leaderboard table newest first, today's cycles for the spend, the newest cycles for the
workers' names, and the newest completion.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from agent_pipeline.llm.cost import spent_today
from agent_pipeline.store.history import CycleResult, SortKey, leaderboard
from agent_pipeline.store.operations import Operation, OperationType

if TYPE_CHECKING:
    from agent_pipeline.config import Settings
    from agent_pipeline.store.operations import OperationsStore

# Finished cycles the overview lists, newest first.
RECENT_LIMIT = 10
# A research worker counts as seen when it ran a phase of a cycle created within this window...
WORKER_WINDOW = timedelta(hours=24)
# ... among at most this many of the newest cycles (one indexed page, whatever the table's size).
WORKER_ROWS = 200


class RunningCycle(BaseModel):
    """An active cycle: its phase and progress as the worker last wrote them."""

    operation_id: str
    status: str
    phase: str | None
    percentage: float | None
    current_step: str | None
    strategy_name: str | None
    designer: str | None
    started_at: datetime | None


class FinishedCycle(BaseModel):
    """A finished cycle's outcome family and reason (a gate's reason, the error, the cancel)."""

    operation_id: str
    status: str
    outcome: str
    reason: str | None
    strategy_name: str | None
    symbol: str | None
    timeframe: str | None
    deflated_sharpe: float | None
    completed_at: datetime | None


class WorkerSeen(BaseModel):
    """A research worker (Celery hostname) and when a cycle it worked on last changed."""

    name: str
    last_seen: datetime


class Overview(BaseModel):
    running: list[RunningCycle]
    recent: list[FinishedCycle]
    spent_today_usd: float
    budget_usd: float
    workers: list[WorkerSeen]
    last_completed_at: datetime | None
    seconds_since_last_completed: float | None


def collect(store: OperationsStore, settings: Settings, *, recent: int = RECENT_LIMIT) -> Overview:
    """The overview read now (no writes: the workers' reconciler fails stale rows, not this page)."""
    now = datetime.now(UTC)
    last = store.last_completed(OperationType.AGENT_RESEARCH)
    return Overview(
        running=[_running(cycle) for cycle in store.active_cycles()],
        recent=[_finished(r) for r in leaderboard(store, sort=SortKey.CREATED, limit=recent)],
        spent_today_usd=round(spent_today(store), 6),
        budget_usd=settings.daily_budget_usd,
        workers=workers_seen(store, now),
        last_completed_at=last,
        seconds_since_last_completed=(now - last).total_seconds() if last else None,
    )


def workers_seen(store: OperationsStore, now: datetime) -> list[WorkerSeen]:
    """The research workers named on the newest cycles (`metadata.worker`, written when a phase starts)."""
    research = (OperationType.AGENT_RESEARCH,)
    cycles = store.created_since(now - WORKER_WINDOW, operation_types=research, limit=WORKER_ROWS)
    seen: dict[str, datetime] = {}
    for cycle in cycles:
        name = cycle.record.worker
        when = cycle.heartbeat_at or cycle.completed_at or cycle.created_at
        if isinstance(name, str) and name and when > seen.get(name, when - timedelta(seconds=1)):
            seen[name] = when
    return [WorkerSeen(name=name, last_seen=when) for name, when in sorted(seen.items())]


def _running(cycle: Operation) -> RunningCycle:
    progress = cycle.progress or {}
    return RunningCycle(
        operation_id=cycle.operation_id,
        status=cycle.status.value,
        phase=cycle.record.phase,
        percentage=progress.get("percentage"),
        current_step=progress.get("current_step"),
        strategy_name=cycle.record.strategy_name,
        designer=cycle.record.designer,
        started_at=cycle.started_at,
    )


def _finished(result: CycleResult) -> FinishedCycle:
    return FinishedCycle.model_validate(result, from_attributes=True)

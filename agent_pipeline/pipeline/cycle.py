"""Research cycles: trigger, status, cancel, and the chain that runs one.

The faces (CLI, API, embedded runner) call these; they never build chains or import tasks themselves.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from agent_pipeline.config import Settings, get_settings
from agent_pipeline.engine.artifacts import artifact_store
from agent_pipeline.engine.datastore import synced_data_dir
from agent_pipeline.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    DataError,
    InvalidOptionError,
    OperationNotFoundError,
)
from agent_pipeline.llm import cost
from agent_pipeline.llm.choice import choose
from agent_pipeline.llm.cost import check_budget
from agent_pipeline.logs import operation_context, redact
from agent_pipeline.pipeline import user_strategy
from agent_pipeline.pipeline.context import CycleContext, CycleOptions
from agent_pipeline.pipeline.reconcile import reconcile, stop_trainings, tell_study
from agent_pipeline.store.operations import (
    ACTIVE,
    Operation,
    OperationsStore,
    OperationStatus,
    OperationType,
    get_store,
)

logger = logging.getLogger(__name__)

# Metadata keys of the cycle's children, in the order the phases create them.
CHILD_KEYS = ("design_op_id", "training_op_id", "backtest_op_id", "assessment_op_id")


# The chain's tasks, by the names the task modules (agent_pipeline/tasks) register: the pipeline sends them by name
# and never imports the tasks, which sit a layer above it.
CHAIN = (
    "ktrdr.cycle.design", "ktrdr.cycle.train", "ktrdr.cycle.training_gate", "ktrdr.cycle.backtest",
    "ktrdr.cycle.backtest_gate", "ktrdr.cycle.assess", "ktrdr.cycle.finalize",
)  # fmt: skip
RECORD_FAILURE = "ktrdr.cycle.record_failure"


def build_cycle(context: CycleContext) -> Any:
    """design -> train -> training gate -> backtest -> backtest gate -> assess -> finalize, one flat chain."""
    from celery import chain  # lazy: keeps Celery off the CLI's and API's start-up path

    first, *rest = CHAIN
    return chain(app().signature(first, args=(context.model_dump(),)), *(app().signature(name) for name in rest))


def chain_tasks() -> None:
    """Load the Celery app and its task modules (its `include`) before the cycle's row is written, so the time
    between the row and its first phase is messaging alone (issue 11: the CLI paid these imports after the row).
    About 0.1 s cold; a worker has them already."""
    app().loader.import_default_modules()


def app() -> Any:
    """The Celery app, imported on first use."""
    from agent_pipeline.pipeline.celery_app import app as celery_app  # lazy: start-up cost (celery)

    return celery_app


def trigger(
    options: CycleOptions | None = None,
    *,
    store: OperationsStore | None = None,
    settings: Settings | None = None,
) -> Operation:
    """Create a cycle (respecting max_concurrent_cycles and the daily budget) and start its chain.

    Raises:
        CapacityError: the limit of active cycles is reached (`active_cycle_exists`).
        BudgetExhaustedError: today's LLM spend reached the daily budget (`budget_exhausted`).
        InvalidOptionError: a designer that cannot run.
        StrategyValidationError: the user's strategy (`options.strategy`) is invalid or too large.
        BrokerUnavailableError: the broker is unreachable (the cycle is marked failed, nothing is left running).
        StoreError: the artifact store is unreachable, its bucket missing or its credentials refused (no row).
    """
    options = options or CycleOptions()
    store = store or get_store()
    settings = settings or get_settings()
    reconcile(store, settings)
    designer = _check_designer(options, settings)
    _check_user_strategy(options, settings)
    options = _check_universe(options)
    _check_budget(store, settings)
    artifact_store().check()  # before the row: a cycle that could not keep its model never starts
    chain_tasks()  # imports before the row: from here on the trigger pays only for messaging
    metadata = {
        "phase": None,
        "designer": "user" if options.strategy else designer,
        "bypass_gates": options.bypass_gates,
        "model": options.model or settings.model,
    }
    cycle = store.create_cycle(max_active=settings.max_concurrent_cycles, metadata=metadata)
    context = CycleContext(**{**options.model_dump(), "designer": designer}, cycle_id=cycle.operation_id)
    with operation_context(cycle.operation_id):
        _send(store, context)
    return store.get(cycle.operation_id)


def _check_user_strategy(options: CycleOptions, settings: Settings) -> None:
    """A user's strategy is refused before any row exists when it is invalid (every problem, in one message)."""
    if options.strategy is not None:
        if options.symbol or options.timeframe:
            raise InvalidOptionError("a user strategy names its own symbol and timeframe; leave out symbol/timeframe")
        data_dir = synced_data_dir()
        user_strategy.check(
            options.strategy,
            user_strategy.available_series(data_dir),
            close_only=user_strategy.close_only_series(data_dir),
            universes=user_strategy.available_universes(data_dir),
        )


def _check_universe(options: CycleOptions) -> CycleOptions:
    """The options with the universe's stored name and timeframe; refused before any row exists when the universe
    is unknown or the options contradict it (issue 24).

    Raises:
        InvalidOptionError: an unknown universe, another timeframe than its own, `symbol` or a user strategy beside
            it, or `portfolio` without it.
    """
    from agent_pipeline.engine.universe import get_universe  # lazy: start-up cost (pandas)

    if options.universe is None:
        if options.portfolio is not None:
            raise InvalidOptionError("portfolio applies to a universe cycle only: name the universe too")
        return options
    if options.strategy is not None:
        raise InvalidOptionError("a user strategy names its own universe; leave out universe")
    if options.symbol is not None:
        raise InvalidOptionError("give symbol or universe, not both")
    try:
        universe = get_universe(options.universe, synced_data_dir())
    except DataError as exc:
        raise InvalidOptionError(str(exc)) from None
    if options.timeframe not in (None, universe.timeframe):
        raise InvalidOptionError(f"universe {universe.name} is {universe.timeframe}, not {options.timeframe}")
    return options.model_copy(update={"universe": universe.name, "timeframe": universe.timeframe})


def _check_budget(store: OperationsStore, settings: Settings) -> None:
    check_budget(spent_today(store), settings.daily_budget_usd)


def spent_today(store: OperationsStore | None = None) -> float:
    """USD spent on LLM calls since midnight UTC."""
    return cost.spent_today(store or get_store())


def _check_designer(options: CycleOptions, settings: Settings) -> str:
    """The designer the cycle will use; refused before any row exists if it cannot run.

    Raises:
        InvalidOptionError: unknown name, or Claude without an API key.
    """
    try:
        return choose(settings, options.designer, role="designer")
    except ConfigurationError as exc:
        raise InvalidOptionError(str(exc)) from None


def _send(store: OperationsStore, context: CycleContext) -> None:
    try:
        result = build_cycle(context).apply_async(link_error=app().signature(RECORD_FAILURE))
    except Exception as exc:  # kombu raises several types for an unreachable broker
        message = redact(f"Cycle failed: cannot reach the task broker ({type(exc).__name__}: {exc})")
        store.fail(context.cycle_id, error_message=message)
        raise BrokerUnavailableError(message) from None
    store.merge_metadata(context.cycle_id, {"celery_root_id": result.id})
    logger.info("cycle triggered")


def active_cycle(store: OperationsStore | None = None) -> Operation | None:
    """The newest active cycle, if any."""
    cycles = (store or get_store()).active_cycles()
    return cycles[0] if cycles else None


class LastCycle(BaseModel):
    """The most recent cycle, shown when the agent is idle."""

    operation_id: str
    status: str
    phase: str | None
    strategy_name: str | None
    error_message: str | None
    created_at: datetime
    completed_at: datetime | None
    result_summary: dict[str, Any] | None


class IdleStatus(BaseModel):
    """`{"status": "idle", "phase": null, "last_cycle": {...}}`."""

    status: Literal["idle"] = "idle"
    phase: None = None
    last_cycle: LastCycle | None


class ActiveStatus(BaseModel):
    """The active cycle: phase, progress, strategy and the child operation doing the work."""

    status: Literal["active"] = "active"
    operation_id: str
    phase: str
    progress: dict[str, Any]
    strategy_name: str | None
    child_operation_id: str | None
    child_progress: dict[str, Any] | None
    child_status: str | None
    started_at: datetime | None
    designer: str | None


def status(store: OperationsStore | None = None) -> ActiveStatus | IdleStatus:
    """The agent's status as the API and CLI report it (active cycle, or idle with the last cycle).

    A read only: failing stale rows is the research worker's timer's job and the trigger's (issue 26).
    """
    store = store or get_store()
    cycle = active_cycle(store)
    if cycle is None:
        last = store.list(operation_type=OperationType.AGENT_RESEARCH, limit=1)
        return IdleStatus(last_cycle=_last_cycle(last[0]) if last else None)
    child = current_child(store, cycle)
    return ActiveStatus(
        operation_id=cycle.operation_id,
        phase=cycle.record.phase or "queued",
        progress=cycle.progress,
        strategy_name=cycle.record.strategy_name,
        child_operation_id=child.operation_id if child else None,
        child_progress=child.progress if child else None,
        child_status=child.status.value if child else None,
        started_at=cycle.started_at,
        designer=cycle.record.designer,
    )


def current_child(store: OperationsStore, cycle: Operation) -> Operation | None:
    """The newest child the cycle has created."""
    record = cycle.record
    for key in reversed(CHILD_KEYS):
        if getattr(record, key):
            return store.get(getattr(record, key))
    return None


def _last_cycle(cycle: Operation) -> LastCycle:
    return LastCycle(
        operation_id=cycle.operation_id,
        status=cycle.status.value,
        phase=cycle.record.phase,
        strategy_name=cycle.record.strategy_name,
        error_message=cycle.error_message,
        created_at=cycle.created_at,
        completed_at=cycle.completed_at,
        result_summary=cycle.result_summary,
    )


def cancel(
    operation_id: str | None = None,
    *,
    store: OperationsStore | None = None,
    reason: str = "Cancelled by user",
) -> Operation:
    """Cancel a cycle (default: the active one) and its children; a training stops within one epoch.

    Cancelling a child of an active cycle cancels the whole cycle: the chain cannot go on without the phase.

    Raises:
        OperationNotFoundError: unknown id, or no active research cycle when none is given.
        InvalidTransitionError: the operation already finished.
    """
    store = store or get_store()
    if operation_id is None:
        cycle = active_cycle(store)
        if cycle is None:
            raise OperationNotFoundError("no active research cycle to cancel")
        operation_id = cycle.operation_id
    target = store.require_transition(operation_id, OperationStatus.CANCELLED)
    parent = store.get(target.parent_operation_id) if target.parent_operation_id else None
    if parent is not None and parent.operation_type == OperationType.AGENT_RESEARCH and parent.status in ACTIVE:
        store.cancel(parent.operation_id, reason=f"{reason} ({target.operation_type.value} {operation_id})")
        stop_trainings(store, parent.operation_id)
        tell_study(store, parent.operation_id)
    else:
        store.cancel(operation_id, reason=reason)
        stop_trainings(store, operation_id)
        tell_study(store, operation_id)
    return store.get(operation_id)

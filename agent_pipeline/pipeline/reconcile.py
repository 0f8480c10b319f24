"""Ending a cycle outside its chain (cancelled, or failed by the reconciler): stop its trainings, tell its trial."""

from __future__ import annotations

from agent_pipeline.config import Settings
from agent_pipeline.llm.study import tell_cycle
from agent_pipeline.pipeline.flags import stop_training
from agent_pipeline.store.operations import OperationsStore, OperationType


def tell_study(store: OperationsStore, operation_id: str) -> None:
    """A cycle that ends outside its chain (cancelled, reconciled) never reaches the chain's tell: tell it here,
    so its optimiser trial does not stay RUNNING. Optuna is imported only when there is a trial to tell."""
    cycle = store.get(operation_id)
    if cycle.operation_type == OperationType.AGENT_RESEARCH and cycle.record.symbol:
        tell_cycle(cycle)


def stop_trainings(store: OperationsStore, operation_id: str) -> None:
    """Signal every training of the operation (itself or its children) to stop, whatever its row says.

    Read after the rows are cancelled, so a training created meanwhile is not missed.
    """
    candidates = [store.get(operation_id), *store.list(parent_operation_id=operation_id, limit=50)]
    for op in candidates:
        if op.operation_type == OperationType.TRAINING:
            stop_training(op.operation_id, op.training_record.celery_task_id)


def reconcile(store: OperationsStore, settings: Settings) -> None:
    """Fail what lost its heartbeat, and stop any training those failed rows still have running.

    The order is what a reader may see: a lost cycle's trainings are told to stop first, then its children are
    failed, then the cycle. So once a cycle reads `failed`, its training's cancel flag is up and no child row of
    it still reads `running` (the research worker's timer, a trigger and the worker's start all come here).
    """
    stale_after = settings.heartbeat_stale_after
    lost = store.stale(stale_after=stale_after)
    for operation in lost:
        if operation.operation_type == OperationType.AGENT_RESEARCH:
            stop_trainings(store, operation.operation_id)
    for operation in lost:  # children before their cycles (store.stale's order)
        if store.fail_lost(operation, stale_after) and operation.operation_type == OperationType.AGENT_RESEARCH:
            stop_trainings(store, operation.operation_id)  # again: a training created meanwhile is not missed
            tell_study(store, operation.operation_id)

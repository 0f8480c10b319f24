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
    if cycle.operation_type == OperationType.AGENT_RESEARCH and cycle.metadata.get("symbol"):
        tell_cycle(cycle)


def stop_trainings(store: OperationsStore, operation_id: str) -> None:
    """Signal every training of the operation (itself or its children) to stop, whatever its row says.

    Read after the rows are cancelled, so a training created meanwhile is not missed.
    """
    candidates = [store.get(operation_id), *store.list(parent_operation_id=operation_id, limit=50)]
    for op in candidates:
        if op.operation_type == OperationType.TRAINING:
            stop_training(op.operation_id, op.metadata.get("celery_task_id"))


def reconcile(store: OperationsStore, settings: Settings) -> None:
    """Fail what lost its heartbeat, and stop any training those failed rows still have running."""
    for operation_id in store.reconcile_stale(stale_after=settings.heartbeat_stale_after):
        if store.get(operation_id).operation_type == OperationType.AGENT_RESEARCH:
            stop_trainings(store, operation_id)
            tell_study(store, operation_id)

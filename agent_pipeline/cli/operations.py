"""`ktrdr operations`: list, inspect and cancel operations."""

from __future__ import annotations

import click

from agent_pipeline.cli.app import cli, console, echo_json, open_store
from agent_pipeline.cli.render import operation_panel, operations_table
from agent_pipeline.store.operations import (
    OperationStatus,
    OperationType,
)


@cli.group()
def operations() -> None:
    """List, inspect and cancel operations (cycles and their phases)."""


TYPE_CHOICE = click.Choice([t.value for t in OperationType])
STATUS_CHOICE = click.Choice([s.value for s in OperationStatus])


@operations.command("list")
@click.option("--type", "operation_type", type=TYPE_CHOICE, help="Only operations of this type.")
@click.option("--status", type=STATUS_CHOICE, help="Only operations in this status.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Rows to show.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip.")
@click.option("--parent", "parent_operation_id", help="Only children of this operation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def list_operations(
    operation_type: str | None,
    status: str | None,
    limit: int,
    offset: int,
    parent_operation_id: str | None,
    as_json: bool,
) -> None:
    """List operations, newest first."""
    found = open_store().list(
        operation_type=OperationType(operation_type) if operation_type else None,
        status=OperationStatus(status) if status else None,
        parent_operation_id=parent_operation_id,
        limit=limit,
        offset=offset,
    )
    if as_json:
        echo_json([op.to_dict() for op in found])
    else:
        console().print(operations_table(found))


@operations.command("status")
@click.argument("operation_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def operation_status(operation_id: str, as_json: bool) -> None:
    """Show every field of one operation, and its children."""
    store = open_store()
    operation = store.get(operation_id)
    if as_json:
        echo_json(operation.to_dict())
        return
    children = store.list(parent_operation_id=operation_id, limit=500)
    console().print(operation_panel(operation, children))


@operations.command("cancel")
@click.argument("operation_id")
@click.option("--reason", default="Cancelled by user", show_default=True, help="Recorded as the error message.")
def cancel_operation(operation_id: str, reason: str) -> None:
    """Cancel a pending or running operation and its active children (a training stops within one epoch)."""
    from agent_pipeline.pipeline import cycle  # lazy: start-up cost (celery, pandas)

    store = open_store()
    active = [op for op in store.list(parent_operation_id=operation_id, limit=500) if not op.status.is_finished]
    cycle.cancel(operation_id, store=store, reason=reason)
    suffix = f" and {len(active)} active child operation(s)" if active else ""
    click.echo(f"Cancelled {operation_id}{suffix}.")

"""`ktrdr db`: manage the operations database."""

from __future__ import annotations

import click

from agent_pipeline.cli.app import cli
from agent_pipeline.config import get_settings
from agent_pipeline.store.operations import (
    get_store,
    safe_url,
)


@cli.group()
def db() -> None:
    """Manage the operations database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the operations table to the newest schema (idempotent)."""

    url = get_settings().database_url
    get_store(url).upgrade()
    click.echo(f"Database is up to date: {safe_url(url)}")

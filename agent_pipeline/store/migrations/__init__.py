"""Alembic migrations of the operations table, run in-process (`ktrdr db upgrade`, worker and API start)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Run Alembic's upgrade on `engine` (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

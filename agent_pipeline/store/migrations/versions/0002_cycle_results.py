"""Create cycle_results: one typed row per finished cycle, indexed for the leaderboard; backfilled once.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Leaderboard orderings: index name suffix -> sort column (see agent_pipeline.store.history.SortKey).
SORT_COLUMNS = {"dsr": "deflated_sharpe", "sharpe": "sharpe_ratio", "return": "total_return", "created": "created_at"}


def upgrade() -> None:
    op.create_table(
        "cycle_results",
        sa.Column("operation_id", sa.String(80), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("strategy_name", sa.String(80)),
        sa.Column("symbol", sa.String(32)),
        sa.Column("timeframe", sa.String(8)),
        sa.Column("designer", sa.String(16)),
        sa.Column("balanced_accuracy", sa.Float),
        sa.Column("sharpe_ratio", sa.Float),
        sa.Column("num_trades", sa.Integer),
        sa.Column("deflated_sharpe", sa.Float),
        sa.Column("total_return", sa.Float),
        sa.Column("excess_return", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("discovery", sa.Boolean),
        sa.Column("lockbox_return", sa.Float),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, column in SORT_COLUMNS.items():
        # Postgres walks these in `ORDER BY col DESC NULLS LAST, operation_id DESC` order; SQLite has no
        # NULLS LAST in an index, and its tables are small (the embedded run).
        key = sa.text(f"{column} DESC NULLS LAST") if postgres else sa.text(f"{column} DESC")
        op.create_index(f"ix_cycle_results_{name}", "cycle_results", [key, sa.text("operation_id DESC")])
        op.create_index(
            f"ix_cycle_results_series_{name}",
            "cycle_results",
            ["symbol", "timeframe", key, sa.text("operation_id DESC")],
        )
    op.create_index("ix_cycle_results_outcome", "cycle_results", ["outcome"])
    _backfill()


def _backfill() -> None:
    """Rows for the cycles that finished before this table existed (a one-time scan)."""
    from sqlalchemy.orm import Session

    from agent_pipeline.store.history import record_result
    from agent_pipeline.store.models import FINISHED, OperationRow, OperationType, to_record

    session = Session(bind=op.get_bind())
    finished = sa.select(OperationRow).where(
        OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
        OperationRow.status.in_([s.value for s in FINISHED]),
    )
    for row in session.scalars(finished):
        record_result(session, to_record(row))
    session.flush()


def downgrade() -> None:
    op.drop_table("cycle_results")

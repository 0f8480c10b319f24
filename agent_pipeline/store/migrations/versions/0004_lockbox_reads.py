"""Create lockbox_reads: one row per read of a series' lockbox (issue 25); backfilled once.

Every finished cycle traded its series' lockbox before reads were logged, and each of those trades was a read:
a count that started at zero today would deflate the best lockbox Sharpe over too few trials. So each completed
cycle whose result summary holds a traded lockbox becomes a read here, with the figures it showed; its strategy
checksum and model sha256 stay null (nobody hashed them then), so it never refuses a later read.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.dialects.postgresql import JSONB

    op.create_table(
        "lockbox_reads",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("cycle_id", sa.String(80), nullable=False, unique=True),
        sa.Column("strategy_checksum", sa.String(64)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )
    # One read per strategy and model: a second read of the same pair is refused (store/lockbox.py), and two
    # cycles racing to read it cannot both log one. Null checksums (the backfilled reads) never collide.
    op.create_index(
        "ux_lockbox_reads_strategy_model", "lockbox_reads", ["strategy_checksum", "model_sha256"], unique=True
    )
    op.create_index("ix_lockbox_reads_series", "lockbox_reads", ["symbol", "timeframe", "at"])
    _backfill()


def _backfill() -> None:
    """A read for each completed cycle that traded its lockbox before this table existed (a one-time scan)."""
    from sqlalchemy.orm import Session

    from agent_pipeline.store.lockbox import backfilled_read
    from agent_pipeline.store.models import OperationRow, OperationStatus, OperationType, to_record

    session = Session(bind=op.get_bind())
    completed = sa.select(OperationRow).where(
        OperationRow.operation_type == OperationType.AGENT_RESEARCH.value,
        OperationRow.status == OperationStatus.COMPLETED.value,
    )
    for row in session.scalars(completed.order_by(OperationRow.completed_at)):
        read = backfilled_read(to_record(row))
        if read is not None:
            session.add(read)
    session.flush()


def downgrade() -> None:
    op.drop_table("lockbox_reads")

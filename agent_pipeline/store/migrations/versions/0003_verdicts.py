"""Judge every finished cycle again under issue 23's rules: a bypassed cycle's outcome is `bypassed`, never
`passed`, and a discovery passed every gate, judged over its series' trials now.

Rewrites each finished cycle's leaderboard row (`history.record_result`), then the discovery flag of every series
(`discoveries.judge` and `apply`): an old cycle run with --bypass-gates, or one judged over fewer trials than its
series holds now, stops being a discovery. Data only; the schema does not change.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.orm import Session

    from agent_pipeline.store.discoveries import apply, judge
    from agent_pipeline.store.history import record_result
    from agent_pipeline.store.models import FINISHED, OperationRow, OperationType, to_record

    session = Session(bind=op.get_bind())
    research = sa.select(OperationRow).where(OperationRow.operation_type == OperationType.AGENT_RESEARCH.value)
    series: dict[tuple[str, str], list] = {}
    for row in session.scalars(research.order_by(OperationRow.created_at)):
        cycle = to_record(row)
        if cycle.status in FINISHED:
            record_result(session, cycle)
        symbol, timeframe = cycle.metadata.get("symbol"), cycle.metadata.get("timeframe")
        if symbol and timeframe:
            series.setdefault((str(symbol), str(timeframe)), []).append(cycle)
    session.flush()
    for (_, timeframe), cycles in series.items():
        apply(session, cycles, judge(cycles, timeframe))
    session.flush()


def downgrade() -> None:
    """Nothing to undo: the rows keep the figures they had; only their verdicts were judged again."""

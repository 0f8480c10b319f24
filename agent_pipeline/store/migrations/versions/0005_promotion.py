"""Judge every series again under the promotion step (issue 25): a discovery is a promoted candidate.

Before this step a completed cycle with both gates passed and a deflated Sharpe of at least 0.95 was a discovery.
Now it is a *candidate*, and a discovery only once its series' probability of backtest overfitting and its purged
combinatorial paths hold up (`gates.promotion`). No old cycle had its paths trained, and this migration measures no
PBO (the trials' return files may live in an object store), so each old discovery becomes a candidate: its
`result_summary.discovery` and leaderboard flag turn false (`discovery_at_run` keeps the old flag), and its
`result_summary.promotion` says what it waits for. Its series' next cycle end measures the PBO and judges it again.
Data only; the schema does not change.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.orm import Session

    from agent_pipeline.store.discoveries import apply, judge
    from agent_pipeline.store.models import OperationRow, OperationType, to_record

    session = Session(bind=op.get_bind())
    research = sa.select(OperationRow).where(OperationRow.operation_type == OperationType.AGENT_RESEARCH.value)
    series: dict[tuple[str, str], list] = {}
    for row in session.scalars(research.order_by(OperationRow.created_at)):
        cycle = to_record(row)
        if cycle.record.series is not None:
            series.setdefault(cycle.record.series, []).append(cycle)
    for (_, timeframe), cycles in series.items():
        apply(session, cycles, judge(cycles, timeframe))
    session.flush()


def downgrade() -> None:
    """Nothing to undo: the rows keep their figures; only their flags were judged again."""

"""Judge every finished cycle again under issue 23's rules: a bypassed cycle's outcome is `bypassed`, never
`passed`, and a discovery passed every gate, judged over its series' trials now.

First, gate verdicts become data on old rows (`gates.Verdict`): a recorded gate outcome gets its gate and
reason code, and a cycle stopped at a gate before outcomes were recorded gets one from its error message. This is
the one place that reads a gate's message; everything after reads the verdict. Then it rewrites each finished
cycle's leaderboard row (`history.record_result`), then the discovery flag of every series
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
        metadata = _with_verdicts(dict(row.metadata_ or {}), row.error_message)
        if metadata != (row.metadata_ or {}):
            row.metadata_ = metadata
            session.flush()
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


GATES = (("training_gate", "Training"), ("backtest_gate", "Backtest"))


def _with_verdicts(metadata: dict, error_message: str | None) -> dict:
    """The cycle's metadata with a verdict (gate, code) on each gate outcome, from its reason or error message."""
    for key, label in GATES:
        record = metadata.get(key)
        prefix = f"{label} gate failed: "
        if not record and error_message and error_message.startswith(prefix):
            record = {"passed": False, "reason": error_message[len(prefix) :], "bypassed": False}
        if isinstance(record, dict) and "code" not in record:
            passed = record.get("passed") is True
            code = "passed" if passed else str(record.get("reason") or "unknown").split(" (")[0]
            metadata[key] = {**record, "gate": key.removesuffix("_gate"), "code": code, "figures": {}}
    return metadata


def downgrade() -> None:
    """Nothing to undo: the rows keep the figures they had; only their verdicts were judged again."""

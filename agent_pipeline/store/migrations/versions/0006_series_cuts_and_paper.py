"""Create series_cuts (each series' fixed research and lockbox end) and the paper trading tables (issue 27).

- `series_cuts`: one row per (symbol, timeframe), written by the series' first cycle (store/series.py). Series whose
  cycles ran before it get their row from their first cycle next time one runs: nothing is backfilled, because
  only a cycle's training knows where its series ended then.
- `paper_accounts`, `paper_positions`, `paper_fills`, `paper_equity`: paper accounts of a cycle's final model
  (store/paper.py). A bar is booked once: `paper_equity`'s key is (account, bar time), a fill's is (account, bar
  time, seq).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


# Every time here is UTC; a bar's time is the bar's own (naive in the series files, UTC by convention).
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    _series_cuts()
    _accounts()
    _ledger()


def _series_cuts() -> None:
    op.create_table(
        "series_cuts",
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("timeframe", sa.String(8), primary_key=True),
        sa.Column("series_end", sa.String(40), nullable=False),
        sa.Column("cycle_id", sa.String(80), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )


def _accounts() -> None:
    from sqlalchemy.dialects.postgresql import JSONB

    op.create_table(
        "paper_accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("cycle_id", sa.String(80), nullable=False, index=True),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("capital", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("model_url", sa.Text, nullable=False),
        sa.Column("strategy_yaml", sa.Text, nullable=False),
        sa.Column("start_after", WHEN, nullable=False),
        sa.Column("stop_on_decay", sa.Boolean, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("bars", sa.Integer, nullable=False),
        sa.Column("last_bar", WHEN),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("decay", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("decayed_bar", WHEN),
        sa.Column("decay_statistic", sa.Float),
        sa.Column("decayed_at", WHEN),
        sa.Column("stopped_at", WHEN),
        sa.Column("stop_reason", sa.String(16)),
        sa.Column("last_error", sa.Text),
        sa.Column("stepped_at", WHEN),
    )
    op.create_index("ix_paper_accounts_state", "paper_accounts", ["state", "created_at"])


def _ledger() -> None:
    op.create_table(
        "paper_positions",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("entry_price", sa.Float),
        sa.Column("entry_bar", WHEN),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("bar_time", WHEN, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
    )
    op.create_index("ux_paper_fills_bar", "paper_fills", ["account_id", "bar_time", "seq"], unique=True)
    op.create_table(
        "paper_equity",
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("bar_time", WHEN, primary_key=True),
        sa.Column("bar", sa.Integer, nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("position", sa.Float, nullable=False),
        sa.Column("target", sa.Float, nullable=False),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("bar_return", sa.Float, nullable=False),
    )
    op.create_index("ux_paper_equity_bar", "paper_equity", ["account_id", "bar"], unique=True)


def downgrade() -> None:
    for table in ("paper_equity", "paper_fills", "paper_positions", "paper_accounts", "series_cuts"):
        op.drop_table(table)

"""Universe paper accounts (issue 27 after issue 24): an account says the universe it trades, its portfolio mode and
the symbols it trades (the universe's when it opened); NULL on an account of one series.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.dialects.postgresql import JSONB

    with op.batch_alter_table("paper_accounts") as batch:  # batch: SQLite alters a table by copying it
        batch.add_column(sa.Column("universe", sa.String(32)))
        batch.add_column(sa.Column("portfolio_mode", sa.String(8)))
        batch.add_column(sa.Column("symbols", sa.JSON().with_variant(JSONB(), "postgresql")))


def downgrade() -> None:
    with op.batch_alter_table("paper_accounts") as batch:
        for column in ("symbols", "portfolio_mode", "universe"):
            batch.drop_column(column)

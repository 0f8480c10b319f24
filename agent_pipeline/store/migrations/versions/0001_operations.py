"""Create the operations table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("operation_id", sa.String(80), primary_key=True),
        sa.Column("operation_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_operation_id", sa.String(80)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("progress", JSON_TYPE, nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=False),
        sa.Column("result_summary", JSON_TYPE),
        sa.Column("error_message", sa.Text),
    )
    op.create_index("ix_operations_type_created", "operations", ["operation_type", "created_at"])
    op.create_index("ix_operations_status_type", "operations", ["status", "operation_type"])
    op.create_index("ix_operations_created", "operations", ["created_at"])
    op.create_index("ix_operations_parent", "operations", ["parent_operation_id"])


def downgrade() -> None:
    op.drop_table("operations")

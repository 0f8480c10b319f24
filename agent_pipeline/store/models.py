"""The operations table's model: its row, the detached record the rest of the code sees, types and statuses."""

from __future__ import annotations

import enum
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from agent_pipeline.store.record import CycleRecord, TrainingRecord


class OperationType(enum.StrEnum):
    AGENT_RESEARCH = "agent_research"
    AGENT_DESIGN = "agent_design"
    TRAINING = "training"
    BACKTESTING = "backtesting"
    AGENT_ASSESSMENT = "agent_assessment"


class OperationStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED


ACTIVE = (OperationStatus.PENDING, OperationStatus.RUNNING)
FINISHED = (OperationStatus.COMPLETED, OperationStatus.FAILED, OperationStatus.CANCELLED)
# Legal transitions: target -> the statuses it may come from. Finished rows have no way out.
ALLOWED_FROM: dict[OperationStatus, tuple[OperationStatus, ...]] = {
    OperationStatus.RUNNING: (OperationStatus.PENDING,),
    OperationStatus.COMPLETED: (OperationStatus.RUNNING,),
    OperationStatus.FAILED: ACTIVE,
    OperationStatus.CANCELLED: ACTIVE,
}

_JSON = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class OperationRow(Base):
    __tablename__ = "operations"

    operation_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    operation_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    parent_operation_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress: Mapped[dict[str, Any]] = mapped_column(_JSON, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", _JSON, default=dict)
    result_summary: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_operations_type_created", "operation_type", "created_at"),
        Index("ix_operations_status_type", "status", "operation_type"),
        Index("ix_operations_created", "created_at"),
        Index("ix_operations_parent", "parent_operation_id"),
    )


class LockboxReadRow(Base):
    """One read of a series' lockbox: a cycle's final model traded it (issue 25; see store/lockbox.py).

    `figures` keeps what the read showed, so a refused repeat shows it again and the leaderboard deflates the best
    lockbox Sharpe over the reads without opening the cycles' JSON. The checksums are null on the reads backfilled
    from cycles that finished before reads were logged (migration 0004).
    """

    __tablename__ = "lockbox_reads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    cycle_id: Mapped[str] = mapped_column(String(80), unique=True)
    strategy_checksum: Mapped[str | None] = mapped_column(String(64))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    figures: Mapped[dict[str, Any]] = mapped_column(_JSON, default=dict)

    __table_args__ = (
        Index("ux_lockbox_reads_strategy_model", "strategy_checksum", "model_sha256", unique=True),
        Index("ix_lockbox_reads_series", "symbol", "timeframe", "at"),
    )


@dataclass(frozen=True)
class Operation:
    """One operation row, detached from the database; what the CLI, API and tasks see."""

    operation_id: str
    operation_type: OperationType
    status: OperationStatus
    parent_operation_id: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    heartbeat_at: datetime | None
    progress: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    result_summary: dict[str, Any] | None = None
    error_message: str | None = None

    @property
    def record(self) -> CycleRecord:
        """The metadata as a research cycle's typed record (`store.record`)."""
        return CycleRecord.read(self.metadata)

    @property
    def training_record(self) -> TrainingRecord:
        """The metadata as a training operation's typed record."""
        return TrainingRecord.read(self.metadata)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with the field names of DESIGN.md."""
        data = asdict(self)
        data["operation_type"] = self.operation_type.value
        data["status"] = self.status.value
        for key in ("created_at", "started_at", "completed_at", "heartbeat_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_operation_id(operation_type: OperationType, now: datetime | None = None) -> str:
    """`op_<type>_<YYYYMMDD_HHMMSS>_<8 hex>`."""
    stamp = (now or utcnow()).strftime("%Y%m%d_%H%M%S")
    return f"op_{operation_type.value}_{stamp}_{secrets.token_hex(4)}"


def aware(value: datetime | None) -> datetime | None:
    # SQLite drops the zone; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def to_record(row: OperationRow) -> Operation:
    return Operation(
        operation_id=row.operation_id,
        operation_type=OperationType(row.operation_type),
        status=OperationStatus(row.status),
        parent_operation_id=row.parent_operation_id,
        created_at=aware(row.created_at) or utcnow(),
        started_at=aware(row.started_at),
        completed_at=aware(row.completed_at),
        heartbeat_at=aware(row.heartbeat_at),
        progress=dict(row.progress or {}),
        metadata=dict(row.metadata_ or {}),
        result_summary=dict(row.result_summary) if row.result_summary is not None else None,
        error_message=row.error_message,
    )

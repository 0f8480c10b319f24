"""What a research cycle's tasks pass along the chain, and the phases it moves through."""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict


class Phase(enum.StrEnum):
    DESIGNING = "designing"
    TRAINING = "training"
    BACKTESTING = "backtesting"
    ASSESSING = "assessing"


class CycleContext(BaseModel):
    """The message every phase task receives and returns.

    It stays small on purpose: results live in the cycle's row (the source of truth), so a redelivered or
    duplicated task reads what is already done instead of trusting a stale message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle_id: str
    bypass_gates: bool = False
    designer: str | None = None
    model: str | None = None
    symbol: str | None = None
    timeframe: str | None = None

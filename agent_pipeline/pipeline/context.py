"""What a research cycle's tasks pass along the chain, and the phases it moves through."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Largest strategy document accepted (bytes of UTF-8): real ones are ~2 KB; the text travels in the chain message.
MAX_STRATEGY_BYTES = 64 * 1024


class Phase(enum.StrEnum):
    DESIGNING = "designing"
    TRAINING = "training"
    BACKTESTING = "backtesting"
    ASSESSING = "assessing"


class CycleOptions(BaseModel):
    """What a user may choose when triggering a cycle (the CLI's options, the API's request body)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bypass_gates: bool = False
    designer: str | None = None
    model: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    # A universe's name (issue 24): one model across its symbols; the designer is told so. Excludes `symbol`.
    universe: str | None = Field(default=None, max_length=64)
    # How a designed universe strategy trades (`portfolio.mode`); None: `timing`. Only with `universe`.
    portfolio: Literal["timing", "rank"] | None = None
    # A user's strategy (YAML text): the design phase runs it as given instead of asking a designer.
    strategy: str | None = Field(default=None, max_length=MAX_STRATEGY_BYTES)


class CycleContext(CycleOptions):
    """The message every phase task receives and returns: the cycle's id and its options.

    It stays small on purpose: results live in the cycle's row (the source of truth), so a redelivered or
    duplicated task reads what is already done instead of trusting a stale message.
    """

    cycle_id: str

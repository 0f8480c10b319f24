"""The designer interface: memory and market data in, one validated `Strategy` out.

Implementations live in `agent_pipeline.llm.designers` (`anthropic`, `offline`, `random`); `get_designer` picks one
from the settings. A designer only produces the strategy; the caller saves it (`save_design`) and records
the outcome on the operation.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_pipeline.engine.strategy import Strategy, save_strategy
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.llm.cost import Usage
from agent_pipeline.llm.memory import ResearchMemory

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class DesignOutcome:
    """A validated strategy and how it was obtained."""

    strategy: Strategy
    document: dict[str, Any]
    usage: Usage | None
    designer: str
    attempts: int
    notes: str = ""
    study_trial: int | None = None  # the optimiser's trial number (offline and random designers)

    def to_dict(self) -> dict[str, Any]:
        """Operation metadata: everything but the strategy object (its document is included)."""
        return {
            "strategy_name": self.strategy.name,
            "document": self.document,
            "usage": self.usage.to_dict() if self.usage else None,
            "designer": self.designer,
            "attempts": self.attempts,
            "notes": self.notes,
            "study_trial": self.study_trial,
        }


class Designer(abc.ABC):
    """Writes one strategy per call."""

    name: str

    @abc.abstractmethod
    def design(
        self,
        *,
        memory: ResearchMemory,
        catalogue: list[DataSeries],
        symbol: str | None = None,
        timeframe: str | None = None,
        portfolio: str | None = None,
    ) -> DesignOutcome:
        """Propose a strategy for data in `catalogue` (restricted to `symbol`/`timeframe` when given).

        On a universe (`DataSeries.is_universe`) the strategy names `universe:`, and trades `portfolio`
        (`timing` or `rank`; None: timing).

        Raises:
            DesignError: no valid strategy within the repair budget, or no data matches the request.
                Its message does not start with `Design failed:`; the phase task adds that prefix.
            LLMError: the LLM endpoint failed after the SDK's retries (Anthropic designer only).
        """


def save_design(outcome: DesignOutcome, folder: Path, *, now: datetime | None = None) -> Path:
    """Save the designed strategy as `<name>_<UTC YYYYmmdd_HHMMSS>.yaml` in `folder` (never overwriting)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return save_strategy(outcome.strategy, Path(folder), stamp=stamp)

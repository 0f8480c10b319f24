"""The assessor interface: a trained and backtested strategy in, a verdict with reasons out.

Implementations live in `agent_pipeline.llm.assessors` (`anthropic`, `offline`); `get_assessor` picks one
the same way the designer is picked (`KTRDR_DESIGNER`, `auto` meaning Claude when a key is set).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_pipeline.engine.files import atomic_write
from agent_pipeline.engine.strategy import Strategy
from agent_pipeline.llm.cost import Usage

if TYPE_CHECKING:
    pass

VERDICTS = ("promising", "mediocre", "poor")
ASSESSMENT_FILE = "assessment.json"

_Item = Annotated[str, Field(min_length=3, max_length=600)]


class Assessment(BaseModel):
    """The assessment document: what Claude's tool call must carry (2-4 items per list)."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["promising", "mediocre", "poor"]
    strengths: list[_Item] = Field(min_length=2, max_length=4)
    weaknesses: list[_Item] = Field(min_length=2, max_length=4)
    suggestions: list[_Item] = Field(min_length=2, max_length=4)


@dataclass(frozen=True)
class AssessmentOutcome:
    """A verdict with 2-4 strengths, weaknesses and suggestions, and who produced it at what cost."""

    verdict: str
    strengths: list[str]
    weaknesses: list[str]
    suggestions: list[str]
    usage: Usage | None
    assessor: str
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "strengths": list(self.strengths),
            "weaknesses": list(self.weaknesses),
            "suggestions": list(self.suggestions),
            "usage": self.usage.to_dict() if self.usage else None,
            "assessor": self.assessor,
            "notes": self.notes,
        }


class Assessor(abc.ABC):
    """Judges one strategy's training and backtest results."""

    name: str

    @abc.abstractmethod
    def assess(
        self,
        *,
        strategy: Strategy,
        training_result: dict[str, Any],
        backtest_result: dict[str, Any],
        gates: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> AssessmentOutcome:
        """Judge the results; `gates` maps `training_gate` / `backtest_gate` to what each recorded (passed,
        reason, bypassed), so a bypassed gate is judged as the stop it would have been.

        Raises:
            AssessmentError: no valid assessment within the repair budget (Anthropic assessor).
            LLMError: the LLM endpoint failed after the SDK's retries (Anthropic assessor).
        """


def save_assessment(outcome: AssessmentOutcome, path: Path) -> Path:
    """Write the assessment as JSON atomically (temp file + rename); `path` is a folder or a `.json` file.

    Returns:
        The file written (`<folder>/assessment.json` when given a folder).
    """
    path = Path(path)
    target = path if path.suffix == ".json" else path / ASSESSMENT_FILE
    return atomic_write(target, json.dumps(outcome.to_dict(), indent=2))

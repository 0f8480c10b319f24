"""The two LLM phases, designer and assessor, each an interface plus Anthropic and offline implementations.

Nothing here imports Celery, the database or the `anthropic` SDK at import time: the caller (a Celery task,
the embedded runner) passes plain data in and records what comes out. The SDK is imported only by the
Anthropic implementations, when one is selected.
"""

from __future__ import annotations

from agent_pipeline.llm.assessor import AssessmentOutcome, Assessor, save_assessment
from agent_pipeline.llm.assessors import get_assessor
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.llm.cost import Usage, check_budget, estimate_cost
from agent_pipeline.llm.designer import Designer, DesignOutcome, save_design
from agent_pipeline.llm.designers import get_designer
from agent_pipeline.llm.memory import PastCycle, ResearchMemory

__all__ = [
    "AssessmentOutcome",
    "Assessor",
    "DataSeries",
    "DesignOutcome",
    "Designer",
    "PastCycle",
    "ResearchMemory",
    "Usage",
    "check_budget",
    "estimate_cost",
    "get_assessor",
    "get_designer",
    "save_assessment",
    "save_design",
]

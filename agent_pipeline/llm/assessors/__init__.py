"""The assessors behind `llm.assessor.Assessor`: Anthropic's Claude and the offline rule-based assessor."""

from __future__ import annotations

from agent_pipeline.config import Settings
from agent_pipeline.llm.assessor import Assessor
from agent_pipeline.llm.assessors.offline import OfflineAssessor
from agent_pipeline.llm.choice import choose


def get_assessor(settings: Settings, name: str | None = None) -> Assessor:
    """The assessor `name` (default: `settings.effective_designer`), configured from `settings`.

    Raises:
        ConfigurationError: unknown name, or `anthropic` without `ANTHROPIC_API_KEY`.
    """
    chosen = choose(settings, name, role="assessor")
    if chosen == "anthropic":
        # lazy: keeps the anthropic SDK off start-up until Claude is chosen
        from agent_pipeline.llm.assessors.anthropic import AnthropicAssessor

        return AnthropicAssessor(settings)
    return OfflineAssessor()

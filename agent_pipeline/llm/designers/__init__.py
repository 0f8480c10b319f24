"""The designers behind `llm.designer.Designer`: Anthropic's Claude, the offline TPE study, and random search."""

from __future__ import annotations

from agent_pipeline.config import Settings
from agent_pipeline.llm.choice import choose
from agent_pipeline.llm.designer import Designer
from agent_pipeline.llm.designers.offline import OfflineDesigner
from agent_pipeline.llm.designers.random import RandomDesigner


def get_designer(settings: Settings, name: str | None = None) -> Designer:
    """The designer `name` (default: `settings.effective_designer`), configured from `settings`.

    Raises:
        ConfigurationError: unknown name, or `anthropic` without `ANTHROPIC_API_KEY`.
    """
    chosen = choose(settings, name, role="designer")
    if chosen == "anthropic":
        # lazy: keeps the anthropic SDK off start-up until Claude is chosen
        from agent_pipeline.llm.designers.anthropic import AnthropicDesigner

        return AnthropicDesigner(settings)
    if chosen == "random":
        return RandomDesigner(settings)
    return OfflineDesigner(settings)

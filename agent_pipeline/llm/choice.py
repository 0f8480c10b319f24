"""Which implementation (Claude or offline) the designer and the assessor use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_pipeline.errors import ConfigurationError

if TYPE_CHECKING:
    from agent_pipeline.config import Settings

# The implementations behind each of the two LLM roles (`random` designs like `offline`, drawing uniformly;
# its cycles are assessed offline).
IMPLEMENTATIONS = ("anthropic", "offline", "random")


def choose(settings: Settings, name: str | None, *, role: str) -> str:
    """`anthropic`, `offline` or `random` for `role` ("designer"/"assessor"); `None` or `auto` follows the settings.

    Cheap (no SDK import), so a trigger can refuse a choice that cannot run before it creates any row.

    Raises:
        ConfigurationError: unknown name, or `anthropic` without `ANTHROPIC_API_KEY`.
    """
    chosen = settings.effective_designer if name in (None, "auto") else str(name)
    if chosen not in IMPLEMENTATIONS:
        raise ConfigurationError(f"unknown {role} {chosen!r}: must be one of {', '.join(IMPLEMENTATIONS)}")
    key = settings.anthropic_api_key
    if chosen == "anthropic" and (key is None or not key.get_secret_value()):
        raise ConfigurationError(f"the anthropic {role} needs ANTHROPIC_API_KEY")
    return chosen

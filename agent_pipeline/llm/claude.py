"""The Anthropic client and the one conversation both LLM phases hold with it.

Structured output comes from a single tool whose `input_schema` is the wanted document's JSON schema. The
reply is validated by the caller's function; each rejection goes back as a `tool_result` with
`is_error: true` carrying the exact validation errors, for at most `max_repairs` repair turns.

Imports the `anthropic` SDK at module level: import this module only from the Anthropic implementations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anthropic

from agent_pipeline.errors import LLMError
from agent_pipeline.llm.cost import Usage

if TYPE_CHECKING:
    from agent_pipeline.config import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Short names a user may put in KTRDR_MODEL; any other string is passed to the API unchanged.
MODEL_ALIASES = {
    "opus": "claude-opus-5-5",
    "sonnet": "claude-sonnet-5-5",
    "haiku": "claude-haiku-5-5",
}
# Room for adaptive thinking plus a full strategy document; below the SDK's 10-minute non-streaming cap.
MAX_TOKENS = 16_000
# Models from the 5.x generation think adaptively and Opus 5.5 / Fable 5.1 answer a forced tool_choice with
# a 400 (platform.claude.com/docs/en/models/opus-5-5/whats-new-opus-5-5); those get `auto` and the prompt,
# plus a repair turn, insists on the tool. Older models are forced to call it.
_FORCEABLE = re.compile(r"^claude-(opus|sonnet|haiku)-[34]([-.]|$)")


class OutputRejected(Exception):
    """Raised by a validate function: the tool input broke the schema; one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


class RepairsExhausted(Exception):
    """Raised when the reply is still invalid after the last repair turn."""

    def __init__(self, errors: list[str], usage: Usage, attempts: int) -> None:
        self.errors = errors
        self.usage = usage
        self.attempts = attempts
        super().__init__("; ".join(errors))


@dataclass(frozen=True)
class Reply(Generic[T]):
    """The validated value, the summed usage of every turn, and the number of turns it took."""

    value: T
    usage: Usage
    attempts: int


def resolve_model(name: str) -> str:
    """`opus` / `sonnet` / `haiku` -> the current model id; anything else unchanged."""
    return MODEL_ALIASES.get(name.strip().lower(), name.strip())


def make_client(settings: Settings) -> anthropic.Anthropic:
    """An SDK client from the settings; the SDK itself honours ANTHROPIC_BASE_URL."""
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
    return anthropic.Anthropic(api_key=key, timeout=settings.llm_timeout, max_retries=settings.llm_max_retries)


class Conversation:
    """One structured-output exchange with Claude: a prompt, one tool, validation and repair turns."""

    def __init__(self, client: anthropic.Anthropic, *, model: str, system: str, tool: dict[str, Any]) -> None:
        self.client = client
        self.model = model
        self.system = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        self.tool = tool
        forced = _FORCEABLE.match(model) is not None
        self.tool_choice = {"type": "tool", "name": tool["name"]} if forced else {"type": "auto"}
        self.usage = Usage(model)

    def run(self, prompt: str, validate: Callable[[Any], T], *, max_repairs: int) -> Reply[T]:
        """Ask, validate, and repair up to `max_repairs` times.

        Raises:
            RepairsExhausted: still invalid after the last repair turn (carries the last errors and usage).
            LLMError: the API failed after the SDK's retries (carries `usage` spent so far).
        """
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        errors: list[str] = []
        for attempt in range(1, max_repairs + 2):
            message = self._create(messages, attempt)
            block = next((b for b in message.content if b.type == "tool_use" and b.name == self.tool["name"]), None)
            if block is None:
                errors = [f"no {self.tool['name']} tool call in the reply (stop_reason {message.stop_reason})"]
                repair: dict[str, Any] = {"role": "user", "content": self._missing_tool_text()}
            else:
                try:
                    return Reply(validate(block.input), self.usage, attempt)
                except OutputRejected as exc:
                    errors = exc.errors
                repair = {"role": "user", "content": [self._rejection(block.id, errors)]}
            logger.info(
                "llm output rejected",
                extra={
                    "model": self.model,
                    "attempt": attempt,
                    "errors": errors[:10],
                    "tool": self.tool["name"],
                },
            )
            # The whole assistant turn goes back unchanged: thinking blocks are bound to the transcript.
            messages += [{"role": "assistant", "content": message.content}, repair]
        raise RepairsExhausted(errors, self.usage, max_repairs + 1)

    def _create(self, messages: list[dict[str, Any]], attempt: int) -> Any:
        try:
            message = self.client.messages.create(  # type: ignore[call-overload]
                model=self.model,
                max_tokens=MAX_TOKENS,
                system=self.system,
                tools=[self.tool],
                tool_choice=self.tool_choice,
                messages=messages,
            )
        except anthropic.APIError as exc:
            error = LLMError(describe_api_error(exc, self.client))
            error.usage = self.usage  # type: ignore[attr-defined]
            raise error from None
        self.usage += usage_of(message, self.model)
        logger.info(
            "llm call",
            extra={
                "model": self.model,
                "attempt": attempt,
                "stop_reason": message.stop_reason,
                "input_tokens": message.usage.input_tokens,
                "output_tokens": message.usage.output_tokens,
                "cost_usd": self.usage.cost_usd,
            },
        )
        return message

    def _missing_tool_text(self) -> str:
        return f"Answer only by calling the `{self.tool['name']}` tool with the complete document."

    def _rejection(self, tool_use_id: str, errors: list[str]) -> dict[str, Any]:
        text = "\n".join(
            ["The document was rejected by the validator:", *[f"- {e}" for e in errors]]
            + [f"Fix every error and call `{self.tool['name']}` again with the complete corrected document."]
        )
        return {"type": "tool_result", "tool_use_id": tool_use_id, "is_error": True, "content": text}


def usage_of(message: Any, model: str) -> Usage:
    """The priced usage of one API reply."""
    usage = message.usage
    return Usage.priced(
        model,
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )


def describe_api_error(exc: anthropic.APIError, client: anthropic.Anthropic) -> str:
    """One clear line for an API failure, never containing the API key."""
    retries = f"after {client.max_retries} retries" if client.max_retries else "with retries disabled"
    if isinstance(exc, anthropic.AuthenticationError):
        text = "Anthropic rejected the API key (401)"
    elif isinstance(exc, anthropic.APITimeoutError):
        text = f"Anthropic API timed out ({client.timeout}s per request) {retries}"
    elif isinstance(exc, anthropic.APIConnectionError):
        text = f"cannot reach the Anthropic API at {client.base_url} {retries}"
    elif isinstance(exc, anthropic.APIStatusError):
        retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500  # what the SDK retries
        reason = exc.api_message or exc.type or "error"
        where = f" {retries}" if retried else ""
        text = f"Anthropic API error {exc.status_code} ({exc.type or 'error'}){where}: {reason}"
    else:
        text = f"Anthropic API error: {type(exc).__name__}"
    return _redact(text[:300], client.api_key)


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text

"""Structured logging: one JSON object per line, carrying the operation id of the work in hand."""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

operation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation_id", default=None)
# Anything shaped like an Anthropic key or a URL password is masked before a line is written.
_SECRET = re.compile(r"(sk-ant-[A-Za-z0-9_\-]+)|(?<=://)([^:/@\s]*):([^@/\s]+)@")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask API keys and URL passwords in `text`."""
    return _SECRET.sub(lambda m: "sk-ant-***" if m.group(1) else f"{m.group(2)}:***@", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        operation_id = getattr(record, "operation_id", None) or operation_id_var.get()
        if operation_id:
            payload["operation_id"] = operation_id
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k != "operation_id"})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


def setup_logging(level: str | int = "INFO") -> None:
    """Send the package's logs to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("agent_pipeline")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        logger.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@contextmanager
def operation_context(operation_id: str | None) -> Iterator[None]:
    """Tag every log line inside the block with `operation_id`."""
    token = operation_id_var.set(operation_id)
    try:
        yield
    finally:
        operation_id_var.reset(token)

"""A scripted stand-in for the Anthropic Messages API: a real HTTP server on loopback.

The real `anthropic` SDK talks to it over HTTP (point `ANTHROPIC_BASE_URL` or `base_url` at `server.url`),
so retries, timeouts, headers and response parsing are the SDK's own. Script replies in order with
`reply`, `reply_tool_use`, `reply_text`; inspect `requests` afterwards.

    with FakeAnthropic() as server:
        server.reply_tool_use("submit_strategy", {...})
        ...

The `fake_anthropic` pytest fixture starts one and sets `ANTHROPIC_BASE_URL` for the test; import it into
a conftest (`from tests.fake_anthropic import fake_anthropic  # noqa: F401`).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Scripted:
    """One scripted reply: status, JSON body, extra headers, and a delay before answering."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Scripted | Callable[[Recorded], Scripted]
_ids = itertools.count(1)


class FakeAnthropic:
    """Answers POST /v1/messages from a queue of scripted replies; records every request."""

    def __init__(self) -> None:
        self.script: deque[Responder] = deque()
        self.requests: list[Recorded] = []
        self.replies: list[Scripted] = []  # what was answered, in order
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -----------------------------------------------------------------------------------
    def reply(self, status: int = 200, body: dict[str, Any] | None = None, *, times: int = 1, **kw: Any) -> None:
        """Queue `times` copies of a raw reply (`headers=`, `delay=` seconds)."""
        for _ in range(times):
            self.script.append(Scripted(status, body, **kw))

    def reply_with(self, responder: Callable[[Recorded], Scripted]) -> None:
        """Queue a callable that builds the reply from the request."""
        self.script.append(responder)

    def reply_tool_use(self, name: str, tool_input: Any, **usage: int) -> None:
        """Queue a `tool_use` message (optionally preceded by a thinking block, like 5.x models)."""
        block = {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}
        self.reply(200, message([{"type": "thinking", "thinking": "", "signature": "sig"}, block], **usage))

    def reply_text(self, text: str, **usage: int) -> None:
        self.reply(200, message([{"type": "text", "text": text}], stop_reason="end_turn", **usage))

    def reply_error(self, status: int, kind: str, *, times: int = 1, retry_after_ms: int = 10) -> None:
        """Queue API errors (`rate_limit_error` 429, `overloaded_error` 529...) with a tiny retry-after."""
        body = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
        self.reply(status, body, times=times, headers={"retry-after-ms": str(retry_after_ms)})

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # wakes handlers sleeping on a scripted delay
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.startswith("/v1/messages")]

    # -- serving -------------------------------------------------------------------------------------
    def _next(self, request: Recorded) -> Scripted:
        with self._lock:
            self.requests.append(request)
            responder = self.script.popleft() if self.script else None
        if responder is None:
            reply = Scripted(500, {"type": "error", "error": {"type": "api_error", "message": "fake: no reply"}})
        else:
            reply = responder(request) if callable(responder) else responder
        self.replies.append(reply)
        return reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                headers = {k.lower(): v for k, v in self.headers.items()}
                scripted = fake._next(Recorded("POST", self.path, headers, body))
                if scripted.delay and fake._closing.wait(scripted.delay):
                    self.close_connection = True
                    return
                payload = json.dumps(scripted.body or {}).encode()
                try:
                    self.send_response(scripted.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for key, value in scripted.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): what a slow API looks like to it

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
                pass

        return Handler


def message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "tool_use",
    input_tokens: int = 1200,
    output_tokens: int = 400,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    model: str = "claude-sonnet-5-5",
) -> dict[str, Any]:
    """A Messages API response body."""
    return {
        "id": f"msg_fake_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read_input_tokens,
            "cache_creation_input_tokens": cache_creation_input_tokens,
        },
    }


@pytest.fixture
def fake_anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """A running fake API; `ANTHROPIC_BASE_URL` points at it for the test."""
    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        yield server

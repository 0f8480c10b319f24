"""The fake Anthropic server fixture (a real HTTP server on loopback, driven by the real SDK)."""

from __future__ import annotations

from tests.fake_anthropic import fake_anthropic  # noqa: F401 - a fixture, used by name

"""The dashboard's session cookie and the CSRF token tied to it.

The cookie is `<issued>.<nonce>.<mac>`, signed with a key derived from KTRDR_API_TOKEN (so every API replica
accepts it, and changing the token logs everyone out) or, with no token set, a key made when the process starts.
Pages want a valid cookie only when the token is set (`deps.api_token`, the JSON API's own rule: an empty token
is unset): the login form (`/ui/login`) checks the token and sets it, HttpOnly and SameSite=Strict. Every
action (a POST) also wants the CSRF token of its session in the form: an HMAC of the cookie, so a page on another
origin can neither read nor forge it (a signed double submit; OWASP's CSRF cheat sheet).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from agent_pipeline.api import deps
from agent_pipeline.config import get_settings

COOKIE = "ktrdr_session"
# Seconds a session lasts; then the login form asks for the token again.
SESSION_MAX_AGE = 12 * 3600
# Signs sessions while no token is set: sessions end with the process, which only means a fresh cookie.
_PROCESS_KEY = secrets.token_bytes(32)


def login_required() -> bool:
    """Whether pages need a login: the API has a token (a non-empty KTRDR_API_TOKEN)."""
    return deps.api_token(get_settings()) is not None


def token_matches(given: str) -> bool:
    """Whether `given` is the API token (compared in constant time); never while no token is set."""
    return deps.token_matches(given, get_settings())


def new_session() -> str:
    """A fresh signed session value for the cookie."""
    body = f"{int(time.time())}.{secrets.token_urlsafe(16)}"
    return f"{body}.{_mac('session', body)}"


def valid_session(value: str | None) -> bool:
    """Whether `value` is a session this key signed, younger than SESSION_MAX_AGE."""
    if not value or value.count(".") != 2:
        return False
    body, mac = value.rsplit(".", 1)
    issued = body.split(".", 1)[0]
    if not issued.isdigit() or time.time() - int(issued) > SESSION_MAX_AGE:
        return False
    return hmac.compare_digest(mac, _mac("session", body))


def csrf_token(session: str) -> str:
    """The CSRF token of a session: what its forms carry in the hidden `csrf` field."""
    return _mac("csrf", session)


def csrf_matches(session: str | None, given: str | None) -> bool:
    """Whether a form's `csrf` field belongs to the (valid) session cookie sent with it."""
    return bool(session and given and valid_session(session) and hmac.compare_digest(given, csrf_token(session)))


def _mac(purpose: str, message: str) -> str:
    return hmac.new(_key(), f"{purpose}|{message}".encode(), hashlib.sha256).hexdigest()


def _key() -> bytes:
    token = deps.api_token(get_settings())
    if token is None:
        return _PROCESS_KEY
    return hashlib.sha256(b"ktrdr-dashboard|" + token.encode()).digest()

"""Requests, responses and the guards every request passes: token, CSRF, read-only.

Invariants:
- With a token configured, nothing but ``/login`` and the static assets answers
  without it (header ``Authorization: Bearer``, the cookie set by ``/login`` or
  ``?token=``); tokens are compared in constant time.
- Every state-changing request is a POST, and a POST is refused when the browser
  says it came from another site (``Sec-Fetch-Site``, ``Origin``). A form POST
  must also carry the CSRF field of a page this server rendered; a JSON POST must
  have ``Content-Type: application/json``, which no cross-site form can send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

__all__ = ["Guard", "HttpError", "Request", "Response", "json_default"]

TOKEN_COOKIE = "pgqueue_token"
CSRF_FIELD = "csrf"
MAX_BODY_BYTES = 1_000_000

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class HttpError(Exception):
    """Ends a request with this status and a one-line message for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""
    path: str = field(init=False)
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        object.__setattr__(self, "path", parts.path or "/")
        object.__setattr__(self, "query", parse_qs(parts.query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def arg(self, name: str) -> str | None:
        """A query parameter given once (empty means not given); repeated is an error."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise HttpError(400, f"query parameter {name!r} is given more than once")
        return values[0] or None

    def form(self) -> dict[str, str]:
        kind = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise HttpError(415, "expected a form (application/x-www-form-urlencoded)")
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}

    def json(self) -> Any:
        kind = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, "expected Content-Type: application/json")
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None

    def cookie(self, name: str) -> str | None:
        raw = self.header("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return None
        morsel = jar.get(name)
        return None if morsel is None else morsel.value


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode("utf-8"), "text/html; charset=utf-8")

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        body = json.dumps(payload, default=json_default, ensure_ascii=False, allow_nan=False)
        return cls(status, body.encode("utf-8"), "application/json")

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        return cls(status, b"", "text/plain", {"Location": location})


def json_default(value: object) -> Any:
    """JSON for the values our rows hold: times as ISO 8601, UUIDs as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Guard:
    """Checks the token and cross-site rules; knows this server's CSRF value."""

    def __init__(self, token: str | None, secret: bytes | None = None) -> None:
        self.token = token or None
        self._secret = secret or secrets.token_bytes(32)
        self.csrf_token = hmac.new(self._secret, b"csrf:" + (self.token or "").encode(),
                                   hashlib.sha256).hexdigest()

    def token_ok(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookie(TOKEN_COOKIE)
        if cookie is not None and hmac.compare_digest(cookie.encode(), self._cookie_value()):
            return True
        auth = request.header("Authorization") or ""
        return auth.lower().startswith("bearer ") and self.check_token(auth[7:].strip())

    def check_token(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.token.encode("utf-8"))

    def check_same_site(self, request: Request) -> None:
        fetch_site = request.header("Sec-Fetch-Site")
        if fetch_site and fetch_site.lower() not in ("same-origin", "none"):
            raise HttpError(403, "cross-site request refused")
        origin = request.header("Origin")
        host = request.header("Host")
        if origin and origin != "null" and host and urlsplit(origin).netloc != host:
            raise HttpError(403, "cross-origin request refused")
        if origin == "null":
            raise HttpError(403, "cross-origin request refused")

    def check_form(self, form: Mapping[str, str]) -> None:
        if not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), self.csrf_token.encode()):
            raise HttpError(403, "missing or stale CSRF field: reload the page and try again")

    def token_cookie(self) -> str:
        """The Set-Cookie value that stands for the token (its hash, never the token)."""
        return f"{TOKEN_COOKIE}={self._cookie_value().decode()}; HttpOnly; SameSite=Strict; Path=/"

    def _cookie_value(self) -> bytes:
        digest = hashlib.sha256(b"pgqueue-dashboard:" + (self.token or "").encode())
        return digest.hexdigest().encode()

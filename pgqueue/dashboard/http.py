"""Requests, responses and the guards every request passes: Host, token, CSRF, read-only.

Invariants:
- A request whose ``Host`` header names anything but the address the server
  listens on (with its port), ``localhost`` on a loopback or wildcard address, an
  IP literal on a wildcard address, or a name allowed by the operator is refused
  with 421 before anything else: a web page cannot reach the dashboard through a
  DNS name it controls (DNS rebinding) and read job args or the CSRF value.
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
import ipaddress
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

__all__ = ["Guard", "HostCheck", "HttpError", "Request", "Response", "json_default"]

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

    def form_values(self, name: str) -> list[str]:
        """Every value of a repeated form field (such as ticked checkboxes)."""
        parsed = parse_qs(self.body.decode("utf-8", "replace"))
        return parsed.get(name, [])

    def json(self) -> Any:
        kind = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, "expected Content-Type: application/json")
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "the body is not valid JSON: it is nested too deeply") from None

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


class HostCheck:
    """Which ``Host`` headers this server answers: the guard against DNS rebinding.

    A page on ``evil.example`` whose name the attacker re-points at 127.0.0.1 talks
    to the dashboard from the browser as a same-origin page, but its requests say
    ``Host: evil.example:PORT``. Accepted: the address the server listens on (as
    given and as bound) with its port; ``localhost`` when that address is loopback
    or a wildcard; any IP literal on a wildcard address (an IP cannot be
    rebound); and each of ``allowed`` (a name, with any port or none, or
    ``name:port`` for that port only). The port may be left out only when it is 80.
    """

    def __init__(self, listen_host: str, bound: tuple[str, int],
                 allowed: Iterable[str] = ()) -> None:
        bound_host, self.port = bound[0], bound[1]
        names = {_host_name(listen_host), _host_name(bound_host)}
        addresses = [a for a in map(_ip, names) if a is not None]
        self.wildcard = any(a.is_unspecified for a in addresses)
        if self.wildcard or any(a.is_loopback for a in addresses) or "localhost" in names:
            names.add("localhost")
        self._names = frozenset(names)
        self._allowed: set[tuple[str, int | None]] = set()
        for entry in allowed:
            name, port = split_host(entry.strip())
            if name:
                self._allowed.add((name, port))

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name, port = split_host(header.strip())
        if (name, port) in self._allowed or (name, None) in self._allowed:
            return True
        if port != self.port and not (port is None and self.port == 80):
            return False
        if name in self._names:
            return True
        return self.wildcard and _ip(name) is not None

    def refusal(self, header: str | None) -> Response:
        shown = repr(header[:200]) if header else "(none)"
        text = (f"421 Misdirected Request: this pgqueue dashboard does not answer for Host "
                f"{shown}. If that name is yours, allow it: pgqueue dashboard --allowed-host "
                f"NAME (or PGQUEUE_DASHBOARD_ALLOWED_HOSTS=NAME,...). Names other than the "
                f"address it listens on are refused so that no web page can reach it "
                f"through a DNS name of its own (DNS rebinding).\n")
        return Response(421, text.encode("utf-8"), "text/plain; charset=utf-8")


def split_host(text: str) -> tuple[str, int | None]:
    """``(name, port)`` of a Host header value, name lower-case; port None if absent.

    A malformed value gives a name no check accepts.
    """
    text = text.lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return "", None
        name, rest = text[1:end], text[end + 1:]
        if not rest:
            return name, None
        if not rest.startswith(":"):
            return "", None
        port_text = rest[1:]
    elif text.count(":") == 1:
        name, port_text = text.split(":")
    elif ":" in text:  # a bare IPv6 address, not valid in a Host header but plain
        return text, None
    else:
        return text.rstrip("."), None
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        return "", None
    return name.rstrip("."), int(port_text)


def _host_name(host: str) -> str:
    return split_host(host if not host.count(":") > 1 else f"[{host}]")[0]


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None

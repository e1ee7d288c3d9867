"""Make an attempt's outcome storable before the completer sends it.

PostgreSQL refuses some values a handler can produce: a NUL character in text
or in a JSON string (``\\u0000``, which jsonb cannot convert to text), and lone
surrogates (not UTF-8 at all; the driver cannot even encode them). One such
outcome would make the whole batch statement fail.

Invariant: what is stored reads like what the handler produced (each character
that cannot be stored becomes its Python escape, ``\\x00`` or ``\\udcff``), and
a note says what was replaced. Clean values pass through unchanged, checked by
a substring test and, for non-ASCII text only, one UTF-8 encode.

Pure functions, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["storable_error", "storable_result_json", "storable_text"]

_NUL = "\x00"
_NUL_IN_JSON = "\\u0000"


def storable_text(text: str) -> tuple[str, str | None]:
    """``text`` with what PostgreSQL cannot store escaped, and a note saying
    what was replaced (None when ``text`` was storable as it is)."""
    if _NUL not in text and (text.isascii() or _encodes(text)):
        return text, None
    text, nuls, surrogates = _escaped(text)
    return text, _note(nuls, surrogates)


def storable_error(error: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """An error entry whose texts PostgreSQL can store, and a note of what was
    replaced (None, and ``error`` itself, when nothing was)."""
    fixed: dict[str, Any] | None = None
    notes: list[str] = []
    for key, value in error.items():
        if type(value) is str:
            text, note = storable_text(value)
            if note is not None:
                if fixed is None:
                    fixed = dict(error)
                fixed[key] = text
                notes.append(f"{key}: {note}")
    if fixed is None:
        return error, None
    return fixed, "; ".join(notes)


def storable_result_json(result_json: str) -> tuple[str | None, str | None]:
    """A result's JSON text that jsonb accepts, and a note of what was replaced
    (None when nothing was). Returns (None, note) if it cannot be made storable."""
    if _NUL_IN_JSON not in result_json and (result_json.isascii() or _encodes(result_json)):
        return result_json, None
    # Slow path, only for suspicious text (a literal backslash-u0000 in a string
    # lands here too, and comes back unchanged).
    counts = [0, 0]
    try:
        value = _clean(json.loads(result_json), counts)
        if counts == [0, 0]:
            return result_json, None
        return json.dumps(value, ensure_ascii=False), f"result: {_note(*counts)}"
    except (ValueError, RecursionError) as exc:
        return None, f"result could not be stored ({type(exc).__name__}: {exc}); dropped"


def _clean(value: Any, counts: list[int]) -> Any:
    """``value`` with every string (keys included) escaped; counts[0] += NULs,
    counts[1] += lone surrogates replaced."""
    if isinstance(value, str):
        if _NUL not in value and (value.isascii() or _encodes(value)):
            return value
        text, nuls, surrogates = _escaped(value)
        counts[0] += nuls
        counts[1] += surrogates
        return text
    if isinstance(value, list):
        return [_clean(v, counts) for v in value]
    if isinstance(value, dict):
        return {_clean(k, counts): _clean(v, counts) for k, v in value.items()}
    return value


def _escaped(text: str) -> tuple[str, int, int]:
    nuls = text.count(_NUL)
    if nuls:
        text = text.replace(_NUL, "\\x00")
    surrogates = 0
    if not _encodes(text):
        fixed = text.encode("utf-8", "backslashreplace").decode("utf-8")
        surrogates = (len(fixed) - len(text)) // 5  # each became a 6-character escape
        text = fixed
    return text, nuls, surrogates


def _note(nuls: int, surrogates: int) -> str:
    parts = []
    if nuls:
        parts.append(f"{nuls} NUL character{'s' if nuls > 1 else ''} replaced by \\x00")
    if surrogates:
        parts.append(f"{surrogates} lone surrogate{'s' if surrogates > 1 else ''} replaced "
                     "by \\uXXXX escapes")
    return "; ".join(parts)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

"""Job args as JSON text, refusing what a jsonb column cannot hold; without I/O.

Invariant: :func:`dump_args` returns the text of a JSON object that PostgreSQL
stores as is (no NUL character, no lone surrogate, no NaN, nesting within 200
levels), or raises :class:`~pgqueue.errors.InvalidJobError` naming the offending
key. Used by :mod:`pgqueue.producer.params` for every job and by the batch callback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from ..errors import InvalidJobError

__all__ = ["check_text", "dump_args", "dump_json", "shorten"]


def dump_args(args: object, field: str = "args") -> str:
    """Serialise job args (or another JSON object, named ``field`` in errors) to JSON text.

    One pass in C in the common case: the encoder itself refuses what JSON cannot
    hold (NaN, infinities, unknown types, huge ints), and what it would accept
    silently is checked cheaply: non-string keys and nesting depth by a walk over
    the containers only, NUL characters and lone surrogates on the output text.
    Only on a refusal or a suspicion does :func:`_check_json` walk every value,
    to raise the error that names the exact offending key.
    """
    if args is None:
        return "{}"
    if not isinstance(args, Mapping):
        raise InvalidJobError(
            f"{field} must be a JSON object (a dict), got {type(args).__name__}"
        )
    try:
        text = _encode(args)
    except (TypeError, ValueError, RecursionError):
        _check_json(args, field)  # raises, naming the key
        raise InvalidJobError(f"{field} cannot be serialised as JSON") from None
    if not _containers_ok(args, 0) or "\\u0000" in text or not _is_utf8(text):
        _check_json(args, field)  # raises, unless the suspicion was unfounded
    return text


def _containers_ok(value: Any, depth: int) -> bool:
    """Whether every object key below is a str and nesting stays within 200 levels."""
    if depth > 200:
        return False
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if (type(item) in _CONTAINERS or isinstance(item, Mapping)) \
                    and not _containers_ok(item, depth + 1):
                return False
        return True
    if type(value) is list or type(value) is tuple:
        for item in value:
            if (type(item) in _CONTAINERS or isinstance(item, Mapping)) \
                    and not _containers_ok(item, depth + 1):
                return False
        return True
    return False  # another Mapping type, or a subclass: let the full walk judge


_CONTAINERS = frozenset({dict, list, tuple})


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_mapping(value: object) -> object:
    # json only knows dict; _containers_ok sends any other Mapping to the full walk.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _make_encode() -> Callable[[object], str]:
    """Compact JSON text, refusing NaN and infinities, Mappings made dicts.

    ``JSONEncoder.encode`` builds the C encoder anew on every call (1.9 µs for a
    small dict); the C encoder built once serialises the same in 0.6 µs. It keeps
    no circular-reference markers: a cycle ends in RecursionError, which
    dump_args treats like any refusal. Where the C encoder is missing (another
    Python implementation), the standard encoder is used.
    """
    standard = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                default=_plain_mapping).encode
    if c_make_encoder is None:
        return standard
    encoder = c_make_encoder(None, _plain_mapping, encode_basestring, None, ":", ",",
                             False, False, False)

    def encode(value: object) -> str:
        return "".join(encoder(value, 0))

    return encode


_encode = _make_encode()

dump_json = _encode
"""Compact JSON text of a value already known to be JSON (no checks): the fast
encoder :func:`dump_args` uses, for values pgqueue built or validated itself."""


def _check_json(value: Any, path: str, depth: int = 0) -> None:
    # Walks the value once, so the error names the exact offending key.
    if depth > 200:
        raise InvalidJobError(f"{path} is nested more than 200 levels deep")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        # Python refuses to print ints of more than 4300 digits (about 14,000 bits).
        if value.bit_length() > 14_000:
            try:
                str(value)
            except ValueError:
                raise InvalidJobError(f"{path} is an integer too large for JSON") from None
        return
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidJobError(f"{path} is {value!r}, which JSON cannot hold")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJobError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            check_text(key, f"{path} key {shorten(key)!r}")
            _check_json(item, f"{path}[{shorten(key)!r}]", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
    else:
        raise InvalidJobError(
            f"{path} is a {type(value).__name__}, which is not JSON-serialisable; "
            "pass str, int, float, bool, None, list or dict"
        )


def check_text(text: str, path: str) -> None:
    """Raise InvalidJobError, naming ``path``, for text PostgreSQL cannot store."""
    if "\x00" in text:
        raise InvalidJobError(f"{path} contains a NUL character, which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJobError(f"{path} is not valid Unicode (lone surrogate)") from None


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters and an ellipsis, for error messages."""
    return text if len(text) <= limit else text[:limit] + "…"

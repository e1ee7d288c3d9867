"""A job's tags: validated, deduplicated, in a stable order; without I/O.

Invariant: :func:`validate_tags` returns a tuple of at most :data:`TAGS_MAX`
distinct strings of 1 to :data:`TAG_LENGTH_MAX` characters that PostgreSQL can
store (what ``pgqueue.tags_valid`` checks on the table), or raises the error
class it is given (:class:`~pgqueue.errors.InvalidJobError` by default) naming
the offending tag. A list or tuple keeps its order (the first of a repeated tag
counts); a set, whose order changes from one process to the next, is sorted.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidJobError
from .args_json import check_text, shorten

__all__ = ["TAGS_MAX", "TAG_LENGTH_MAX", "Tags", "pg_text_array", "validate_tags"]

#: What ``tags=`` takes.
Tags = list[str] | tuple[str, ...] | set[str] | frozenset[str]

TAGS_MAX = 20
TAG_LENGTH_MAX = 100


def validate_tags(tags: object, *, field: str = "tags",
                  error: type[InvalidJobError] = InvalidJobError) -> tuple[str, ...]:
    """The tags as a tuple (empty for None); ``error`` names ``field`` and the bad tag."""
    if tags is None:
        return ()
    if isinstance(tags, str | bytes | Mapping) or not isinstance(
            tags, list | tuple | set | frozenset):
        raise error(f"{field} must be a list, tuple or set of strings, "
                    f"got {type(tags).__name__}")
    for index, tag in enumerate(tags):
        where = f"{field}[{index}]" if not isinstance(tags, set | frozenset) else field
        if not isinstance(tag, str):
            raise error(f"{where} is {shorten(repr(tag))} ({type(tag).__name__}); "
                        "tags are strings")
        if not 1 <= len(tag) <= TAG_LENGTH_MAX:
            raise error(f"{where} must be 1 to {TAG_LENGTH_MAX} characters, got {len(tag)}"
                        + (f" ({shorten(tag)!r})" if tag else ""))
        try:
            check_text(tag, where)
        except InvalidJobError as exc:
            raise error(str(exc)) from None
    ordered = sorted(tags) if isinstance(tags, set | frozenset) else tags
    unique = tuple(dict.fromkeys(ordered))
    if len(unique) > TAGS_MAX:
        raise error(f"{field} holds {len(unique)} distinct tags; at most {TAGS_MAX} are allowed")
    return unique


def pg_text_array(items: tuple[str, ...]) -> str:
    """``items`` as the text of a PostgreSQL text[] (an array inside an array parameter)."""
    return "{" + ",".join(
        '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items) + "}"

"""A filter of jobs by their tags: all of them (``tags @> ...``) or any of them (``&&``).

Every interface that selects jobs by tag (``list_jobs``, ``cancel_jobs``,
``retry_jobs``, the CLI's ``--tag``, the API's and the dashboard's ``tag``)
validates its input here, so a bad filter gets the same clear error everywhere
and nothing runs. The queries take the filter as two parameters, ``tags_all``
and ``tags_any`` (NULL when unused), and say ``tags <> '{}'`` too, which lets
PostgreSQL use the partial GIN index ``jobs_tags_idx`` over live jobs (migration
0019); history by tag is read through ``pgqueue.finished_job_tags``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["FILTER_TAGS_MAX", "TAG_LENGTH_MAX", "TAG_MODES", "TagFilter", "no_tags",
           "tag_filter"]

TAG_MODES = ("all", "any")
"""``all``: jobs with every tag given; ``any``: jobs with at least one of them."""
TAG_LENGTH_MAX = 100
"""A tag is 1 to 100 characters (``pgqueue.tags_valid``); a longer one matches no job."""
FILTER_TAGS_MAX = 100
"""At most this many tags in one filter (a job has at most 20, but any-of may list more)."""


@dataclass(frozen=True, slots=True)
class TagFilter:
    """Validated tags and how they combine."""

    tags: tuple[str, ...]
    mode: str = "all"

    def params(self) -> dict[str, Any]:
        """The two query parameters of a tag filter."""
        tags = list(self.tags)
        return {"tags_all": tags if self.mode == "all" else None,
                "tags_any": tags if self.mode == "any" else None}

    def describe(self) -> str:
        """``tagged a and b`` / ``tagged a or b``, for messages."""
        joined = f" {'and' if self.mode == 'all' else 'or'} ".join(self.tags)
        return f"tagged {joined}"


def no_tags() -> dict[str, Any]:
    """The query parameters of no tag filter at all."""
    return {"tags_all": None, "tags_any": None}


def tag_filter(tags: object, mode: object = "all", *, field: str = "tags") -> TagFilter | None:
    """``tags`` (a list or tuple of strings, or None for no filter) checked, in order,
    duplicates dropped; InvalidArgumentError naming ``field`` otherwise.

    A single string is refused rather than read as its characters: write
    ``tags=["import"]``.
    """
    if mode not in TAG_MODES:
        raise InvalidArgumentError(f"{field}_mode must be 'all' or 'any', got {mode!r}")
    if tags is None:
        return None
    if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidArgumentError(f"{field} must be a list of strings such as "
                                   f"['customer:42'], got {_short(tags)}")
    checked = tuple(dict.fromkeys(_tag(tag, field) for tag in _items(tags)))
    if not checked:
        raise InvalidArgumentError(f"{field} must name at least one tag (None: no filter)")
    if len(checked) > FILTER_TAGS_MAX:
        raise InvalidArgumentError(f"{field} may name at most {FILTER_TAGS_MAX} tags, "
                                   f"got {len(checked)}")
    return TagFilter(checked, str(mode))


def _items(tags: Iterable[object]) -> list[object]:
    return sorted(tags, key=str) if isinstance(tags, set | frozenset) else list(tags)


def _tag(tag: object, field: str) -> str:
    if not isinstance(tag, str):
        raise InvalidArgumentError(f"{field}: every tag must be a string, got {_short(tag)}")
    if not 1 <= len(tag) <= TAG_LENGTH_MAX or "\x00" in tag:
        raise InvalidArgumentError(f"{field}: a tag is 1 to {TAG_LENGTH_MAX} characters "
                                   f"without NUL, got {_short(tag)}")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{field}: a tag must be valid text (no lone surrogate), "
                                   f"got {_short(tag)}") from None
    return tag


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

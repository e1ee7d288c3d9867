"""What ``--tag`` means to the commands that take it: ``jobs list``, ``cancel``, ``retry``.

``--tag a --tag b`` selects jobs tagged a *and* b; ``--tag-mode any`` makes it a
*or* b. A cancel or retry by tag first counts what it would touch and asks to
confirm that count (``--yes`` skips the question, for scripts); it then works
in batches of 500 on an autocommit connection, each committing on its own.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import InvalidArgumentError
from ..producer import tagged
from ..producer.tag_filter import TAG_MODES, TagFilter
from .common import echo_json

__all__ = ["cancel_tagged", "retry_tagged", "tag_mode_option", "tag_option", "yes_option"]

tag_option = click.option(
    "--tag", "tags", multiple=True, metavar="TAG",
    help="Only jobs with this tag; repeat it for several (all of them, unless --tag-mode any).")
tag_mode_option = click.option(
    "--tag-mode", type=click.Choice(TAG_MODES), default="all", show_default=True,
    help="With several --tag: all (jobs with every one) or any (jobs with at least one).")
yes_option = click.option("--yes", "-y", is_flag=True,
                          help="With --tag: do not ask to confirm the count.")


def retry_tagged(conn: Any, tags: tuple[str, ...], mode: str, queue: str | None, *,
                 yes: bool, as_json: bool) -> None:
    """``pgqueue retry --tag``: count, confirm, retry; print what moved."""
    wanted = _filter(tags, mode)
    counts = _counts(conn, wanted, queue)
    where = _where(wanted, queue)
    if counts.retryable and not yes:
        click.confirm(f"retry {counts.retryable} failed or cancelled "
                      f"job{_s(counts.retryable)} {where}?", abort=True, err=True)
    retried = tagged.retry_jobs(conn, tags=wanted.tags, tags_mode=wanted.mode,
                                queue=queue) if counts.retryable else 0
    if as_json:
        echo_json({"tags": list(wanted.tags), "tag_mode": wanted.mode, "queue": queue,
                   "retried": retried})
    else:
        click.echo(f"retried {retried} job{_s(retried)} {where}")


def cancel_tagged(conn: Any, tags: tuple[str, ...], mode: str, queue: str | None,
                  reason: str, *, yes: bool, as_json: bool) -> None:
    """``pgqueue cancel --tag``: count, confirm, cancel; print what happened."""
    wanted = _filter(tags, mode)
    counts = _counts(conn, wanted, queue)
    live = counts.queued + counts.running
    where = _where(wanted, queue)
    if live and not yes:
        click.confirm(f"cancel {live} live job{_s(live)} {where} ({counts.queued} queued, "
                      f"{counts.running} running)?", abort=True, err=True)
    done = tagged.cancel_jobs(conn, tags=wanted.tags, tags_mode=wanted.mode, queue=queue,
                              reason=reason) if live else tagged.CancelCounts(0, 0)
    if as_json:
        echo_json({"tags": list(wanted.tags), "tag_mode": wanted.mode, "queue": queue,
                   "cancelled": done.cancelled, "requested": done.requested})
    else:
        click.echo(f"cancelled {done.cancelled} queued job{_s(done.cancelled)} {where}; "
                   f"asked the workers of {done.requested} running "
                   f"job{_s(done.requested)} to stop")


def _filter(tags: tuple[str, ...], mode: str) -> TagFilter:
    try:
        return tagged.checked_filter(list(tags), mode)
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc)) from None


def _counts(conn: Any, wanted: TagFilter, queue: str | None) -> tagged.TaggedCounts:
    try:
        return tagged.count_tagged(conn, tags=wanted.tags, tags_mode=wanted.mode,
                                   queue=queue)
    except InvalidArgumentError as exc:
        raise click.UsageError(str(exc)) from None


def _where(wanted: TagFilter, queue: str | None) -> str:
    return wanted.describe() + (f" in queue {queue}" if queue else "")


def _s(count: int) -> str:
    return "" if count == 1 else "s"

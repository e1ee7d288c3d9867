"""Which queues a worker serves, with each one's local slots and weight.

Pure parsing and validation, no I/O: ``--queues`` specs (``email=10``,
``critical=w6``, ``default=10:w3``, ``tenants=fair``, ``tenants=10:w3:fair``)
and their Python shapes (a list of such
strings, or a mapping of names to a slot count or a :class:`QueueSpec`) become
:class:`ParsedQueues`. Bad input raises :class:`~pgqueue.errors.ConfigError`
naming the spec and the syntax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["MAX_WEIGHT", "QUEUE_ORDERS", "ParsedQueues", "QueueSpec", "parse_queues"]

#: How a worker's claims share out among its queues: ``priority`` (priority,
#: run_at, id across all of them: the default without weights), ``weighted``
#: (in proportion to the queues' weights, 1 when not given: the default with
#: weights) and ``strict`` (always the first queue, in the order given, that
#: has a job to start).
QUEUE_ORDERS = ("priority", "weighted", "strict")
MAX_WEIGHT = 1000
_SYNTAX = ("syntax: name, or name= and any of slots, wWEIGHT and fair joined by ':', "
           "e.g. email=10, critical=w6, default=10:w3, tenants=fair")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue of ``Worker(queues={...})``: ``slots`` caps the jobs of the queue
    this worker runs at once (None: no cap of its own), ``weight`` its share of
    the worker's claims against the other queues' weights (None: 1, and only
    with ``queue_order="weighted"``), ``fair`` whether the queue's jobs take
    turns by their ``concurrency_key`` (round-robin across keys).

    Example: ``Worker(tasks, queues={"critical": QueueSpec(weight=6),
    "default": QueueSpec(slots=10, weight=3), "low": QueueSpec(weight=1)})``.
    """

    slots: int | None = None
    weight: int | None = None
    fair: bool = False


@dataclass(frozen=True, slots=True)
class ParsedQueues:
    """Queue names in the order given, with local slots and weights by name, and
    the fair queues."""

    names: tuple[str, ...] | None
    slots: dict[str, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    fair: set[str] = field(default_factory=set)


def parse_queues(queues: Iterable[str] | Mapping[str, int | QueueSpec] | None) -> ParsedQueues:
    """Split queue specs into names, local slot caps and weights.

    Accepts names (``["email", "payment"]``), specs as ``--queues`` gives them
    (``["email=10", "critical=w6", "default=10:w3"]``) or a mapping whose values
    are slot counts or :class:`QueueSpec` (``{"email": 10, "critical":
    QueueSpec(weight=6)}``). Values are checked by :class:`~.config.WorkerConfig`.
    Raises ConfigError.
    """
    if queues is None:
        return ParsedQueues(None)
    if isinstance(queues, str):
        raise ConfigError("queues must be a list of queue names, not a single string")
    parsed = ParsedQueues(())
    names: list[str] = []
    if isinstance(queues, Mapping):
        for name, value in queues.items():
            names.append(name)
            if isinstance(value, QueueSpec):
                _put(parsed, name, value.slots, value.weight, value.fair)
            else:
                _put(parsed, name, value, None, False)
        return ParsedQueues(tuple(names), parsed.slots, parsed.weights, parsed.fair)
    for spec in queues:
        if not isinstance(spec, str):
            raise ConfigError(f"a queue must be a string, got {type(spec).__name__}")
        name, sep, rest = spec.partition("=")
        name = name.strip()
        if name in names:
            raise ConfigError(f"queue {name!r} is named twice")
        names.append(name)
        if sep:
            _put(parsed, name, *_parse_options(spec, rest))
    return ParsedQueues(tuple(names), parsed.slots, parsed.weights, parsed.fair)


def _parse_options(spec: str, rest: str) -> tuple[int | None, int | None, bool]:
    """The slots, weight and fairness of ``rest`` (what follows '=' in ``spec``)."""
    slots: int | None = None
    weight: int | None = None
    fair = False
    for raw in rest.split(":"):
        part = raw.strip()
        try:
            if part == "fair":
                if fair:
                    raise ValueError
                fair = True
            elif part[:1] in ("w", "W"):
                if weight is not None:
                    raise ValueError
                weight = int(part[1:])
            else:
                if slots is not None:
                    raise ValueError
                slots = int(part)
        except ValueError:
            raise ConfigError(f"queue spec {spec!r}: {part!r} must be an integer (the slots), "
                              f"w and an integer (the weight) or fair, each at most once "
                              f"({_SYNTAX})") from None
    return slots, weight, fair


def _put(parsed: ParsedQueues, name: str, slots: object, weight: object, fair: bool) -> None:
    if fair is True:
        parsed.fair.add(name)
    elif fair is not False:
        raise ConfigError(f"fair for queue {name!r} must be True or False, got {fair!r}")
    if slots is not None:
        parsed.slots[name] = slots  # type: ignore[assignment]  # checked by WorkerConfig
    if weight is not None:
        parsed.weights[name] = weight  # type: ignore[assignment]

"""The package's boundaries, checked from the code itself (DESIGN: boundaries).

The import graph is read with ``ast`` from ``pgqueue/**/*.py``, relative
imports resolved. An edge is any ``import`` of a pgqueue module, at module level
or inside a function; imports under ``if TYPE_CHECKING:`` are ignored (they never
run). ``from . import x`` is an edge to the submodule ``x`` when there is one,
else to the package.

- No import cycle: module-level and function-level imports both count, except
  a function-level import of the package root ``pgqueue`` itself (reading
  ``__version__``): the root is always loaded before any of its modules runs.
- ``import pgqueue; pgqueue.enqueue`` (in a fresh interpreter) loads no module
  of the worker, the CLI, the dashboard, observability or the demo, nor croniter.
- The producer side (``pgqueue/producer/`` and ``pgqueue/tasks.py``, and
  everything they import, transitively) never imports the worker, the CLI, the
  dashboard, observability, the demo or the test helpers (``pgqueue.testing``).
- The worker's services (``pgqueue/worker/*`` except the assembler
  ``worker/worker.py`` and the package's ``__init__``) never import the CLI,
  observability or the demo, nor the assembler: subscribers are attached where the worker
  is assembled.
- Only the SQL loader (``pgqueue/_sql.py``) names files under ``sql/``.
- Nothing outside ``pgqueue/contrib/`` imports it; only ``pgqueue/contrib/``
  imports Django, SQLAlchemy, Alembic or FastAPI at module level, and
  ``import pgqueue; pgqueue.enqueue`` loads none of them.
- No file over 400 lines, no function over 60.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import pgqueue

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pgqueue"

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60

PRODUCER_PACKAGES = ("pgqueue.producer", "pgqueue.tasks")  # every module under them
WORKER_ASSEMBLY = ("pgqueue.worker", "pgqueue.worker.worker")
NOT_FOR_PRODUCERS = ("pgqueue.worker", "pgqueue.cli", "pgqueue.dashboard",
                     "pgqueue.observability", "pgqueue.demo", "pgqueue.testing")
NOT_FOR_SERVICES = ("pgqueue.cli", "pgqueue.observability", "pgqueue.demo")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith((p + ".", p + "_")) for p in prefixes)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@cache
def imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """The pgqueue modules ``module`` imports: (at module level, inside functions)."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top: set[str] = set()
    inner: set[str] = set()

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            return {alias.name for alias in node.names}
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        return {f"{source}.{a.name}" if f"{source}.{a.name}" in modules() else source
                for a in node.names}

    def visit(nodes: list[ast.stmt] | list[ast.AST], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, in_function)
                continue
            if isinstance(node, ast.Import | ast.ImportFrom):
                (inner if in_function else top).update(
                    t for t in targets(node) if t in modules())
            visit(list(ast.iter_child_nodes(node)), in_function or isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(ast.parse(path.read_text(encoding="utf-8")).body, False)
    top.discard(module)
    inner.discard(module)
    return frozenset(top), frozenset(inner - top)


def edges(module: str) -> set[str]:
    """What ``module`` may load when it runs: every import but the package root's."""
    top, inner = imports(module)
    return set(top) | (set(inner) - {"pgqueue"})


def reachable(start: str, *, skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every module ``start`` can load, with one import path to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in sorted(edges(current)):
            if target not in paths and target not in skip:
                paths[target] = [*paths[current], target]
                todo.append(target)
    return paths


def find_cycle() -> list[str] | None:
    """One import cycle inside the package, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(modules()):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_graph_sees_known_imports() -> None:
    """Guards the reader itself: relative, submodule and function-level imports."""
    top, _ = imports("pgqueue.producer.enqueue")
    assert {"pgqueue.producer.steps", "pgqueue.producer.hooks",
            "pgqueue.producer.insert_steps", "pgqueue.errors"} <= top
    assert "pgqueue.worker.worker" in imports("pgqueue.worker")[1]  # loaded lazily
    assert "pgqueue.observability.tracing" in imports("pgqueue")[1]  # the lazy trace hook


def test_no_import_cycle() -> None:
    assert find_cycle() is None, " -> ".join(find_cycle() or [])


def test_import_pgqueue_and_enqueue_loads_only_the_producer() -> None:
    code = ("import json, sys, pgqueue; pgqueue.enqueue; pgqueue.enqueue_many; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    loaded = json.loads(out)
    heavy = [m for m in loaded
             if _within(m, NOT_FOR_PRODUCERS) or m.split(".")[0] in {"croniter", "opentelemetry",
                                                                      "prometheus_client"}]
    assert heavy == []
    assert "pgqueue.producer.enqueue" in loaded


def test_every_public_name_resolves() -> None:
    for name in pgqueue.__all__:
        assert getattr(pgqueue, name) is not None, name
    assert callable(pgqueue.migrate)  # the function, not its module
    assert pgqueue.Worker.__module__ == "pgqueue.worker.worker"
    with pytest.raises(AttributeError):
        _ = pgqueue.no_such_name  # type: ignore[attr-defined]


def producer_side() -> list[str]:
    found = sorted(m for m in modules() if _within(m, PRODUCER_PACKAGES))
    assert len(found) >= 12, found  # the producer package and the task registry
    return found


def test_producer_side_never_imports_worker_cli_or_observability() -> None:
    offenders = {}
    for start in producer_side():
        for module, path in reachable(start).items():
            if _within(module, NOT_FOR_PRODUCERS):
                offenders[module] = " -> ".join(path)
    assert offenders == {}


def worker_services() -> list[str]:
    return sorted(m for m in modules()
                  if m.startswith("pgqueue.worker.") and m not in WORKER_ASSEMBLY)


def test_worker_services_never_import_cli_or_observability() -> None:
    offenders = {}
    for start in worker_services():
        for module, path in reachable(start).items():
            if _within(module, NOT_FOR_SERVICES) or module in WORKER_ASSEMBLY:
                offenders[module] = " -> ".join(path)
    assert offenders == {}


_NAMES_SQL = re.compile(r"\.sql\b|(^|[/\\])(sql|queries|migrations)[/\\]")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_only_the_sql_loader_reads_sql_files() -> None:
    """No module but _sql.py names a .sql file, the pgqueue.sql package or sql/ folders."""
    offenders = []
    for module, path in sorted(modules().items()):
        if module == "pgqueue._sql":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and (_NAMES_SQL.search(node.value)
                         or node.value in {"sql", "queries", "migrations"})):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value[:60]!r}")
    assert offenders == []


def test_no_file_over_400_lines() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_FILE_LINES:
            offenders[str(path.relative_to(ROOT))] = lines
    assert offenders == {}


def test_no_function_over_60_lines() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    offenders[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert offenders == {}


FRAMEWORKS = ("django", "sqlalchemy", "alembic", "fastapi", "asgiref")
CONTRIB = ("pgqueue.contrib",)


def module_level_imports(path: Path) -> set[str]:
    """Top-level names of everything ``path`` imports when it is imported: module
    level and class bodies, not functions, not ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
            visit([n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_nothing_outside_contrib_imports_contrib() -> None:
    offenders = {m: sorted(t for t in edges(m) if _within(t, CONTRIB))
                 for m in modules() if not _within(m, CONTRIB)}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_frameworks_are_imported_at_module_level_only_by_contrib() -> None:
    offenders = {}
    for module, path in sorted(modules().items()):
        if not _within(module, CONTRIB):
            frameworks = sorted(module_level_imports(path) & set(FRAMEWORKS))
            if frameworks:
                offenders[module] = frameworks
    assert offenders == {}


def test_import_pgqueue_and_enqueue_loads_no_framework() -> None:
    code = ("import json, sys, pgqueue; pgqueue.enqueue; pgqueue.enqueue_many; pgqueue.Registry; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert [m for m in json.loads(out) if m.split(".")[0] in FRAMEWORKS] == []

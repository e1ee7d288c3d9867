"""The declared dependency ranges, the CI constraints and the README's commands agree."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from tests.conftest import ROOT

# Extras that applications install: ranges, tested at the newest and at the minimums.
RUNTIME_EXTRAS = ("otel", "sqlalchemy", "django", "alembic")
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([^\s;,]+)")


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not an exact pin"
            pins[name.strip().lower()] = version.strip()
    return pins


def _minimums(*sections: tuple[str, str]) -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    found: dict[str, str] = {}
    for section, key in sections:
        for line in config[section][key].strip().splitlines():
            match = REQUIREMENT.match(line.strip())
            assert match, f"setup.cfg [{section}] {key}: {line!r} declares no minimum"
            found[match.group(1).lower()] = match.group(2)
    return found


def test_every_runtime_minimum_is_pinned_for_the_minimum_run() -> None:
    declared = _minimums(("options", "install_requires"),
                         *(("options.extras_require", extra) for extra in RUNTIME_EXTRAS))
    assert _pins(ROOT / ".ci" / "constraints-min.txt") == declared


def test_every_dev_tool_is_pinned_exactly() -> None:
    dev = _minimums(("options.extras_require", "dev"), ("options.extras_require", "bench"))
    pinned = _pins(ROOT / ".ci" / "constraints-dev.txt")
    # The runtime extras' dependencies are ranges, tested at their minimums by the min run.
    runtime = _minimums(*(("options.extras_require", extra) for extra in RUNTIME_EXTRAS))
    missing = set(dev) - set(pinned) - set(runtime)
    assert not missing, f"dev tools without an exact pin in .ci/constraints-dev.txt: {missing}"
    for name, version in pinned.items():
        if name in dev:
            assert tuple(map(int, re.findall(r"\d+", version)[:3])) >= tuple(
                map(int, re.findall(r"\d+", dev[name])[:3])), f"{name} pin below its range"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    (command,) = re.findall(r'^TEST_COMMAND="(.+)"$', ci, re.MULTILINE)
    readme = (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in readme, f"README does not give CI's test command: {command}"
    assert "-c .ci/constraints-dev.txt" in command

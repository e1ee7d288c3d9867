"""The built wheel carries the SQL: install it into a fresh venv and migrate from there."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import psycopg
import pytest

from pgqueue._sql import migrations
from tests.conftest import ROOT


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _see_running_dependencies(python: Path) -> None:
    """Let the new venv import the dependencies installed where pytest runs.

    ``system_site_packages`` would give the *base* interpreter's packages, which are
    not these when pytest itself runs in a virtualenv. A ``.pth`` file naming this
    interpreter's site directories puts them after the venv's own site-packages, so
    the wheel installed there wins; their own ``.pth`` files (the editable install's
    finder among them) are not processed, so the checkout stays out of sight.
    """
    target = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                 cwd=python.parent).stdout.strip()
    here = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                          sysconfig.get_paths()["platlib"]])
    (Path(target) / "running-env.pth").write_text("".join(f"{p}\n" for p in here))


@pytest.mark.slow
def test_wheel_installs_and_migrates(tmp_path: Path, empty_dsn: str) -> None:
    dist = tmp_path / "dist"
    # No build isolation: everything needed is installed already, nothing is downloaded.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--quiet", "--wheel-dir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("pgqueue-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _see_running_dependencies(python)
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall",
        "--quiet", wheel, cwd=tmp_path)

    where = run(
        python, "-c",
        "import pgqueue, pgqueue.sql as s, importlib.resources as r;"
        "print(pgqueue.__file__);"
        "print(r.files(s).joinpath('schema.sql').is_file())",
        cwd=tmp_path,
    ).stdout.split()
    assert Path(where[0]).is_relative_to(env_dir), f"pgqueue imported from {where[0]}"
    assert where[1] == "True", "sql/schema.sql is missing from the wheel"

    # Every file of the package in the checkout (code and data) is in the wheel.
    import zipfile

    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("pgqueue/")}
    wanted = {f"pgqueue/{p.relative_to(ROOT / 'pgqueue').as_posix()}"
              for p in (Path(ROOT) / "pgqueue").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    wanted |= {f"pgqueue/sql/{p.relative_to(ROOT / 'sql').as_posix()}"
               for p in (Path(ROOT) / "sql").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - shipped == set(), "files missing from the wheel"
    run(python, "-c", "import pgqueue; pgqueue.Worker; import pgqueue.worker.processes",
        cwd=tmp_path)

    migrated = run(env_dir / "bin" / "pgqueue", "migrate", "--dsn", empty_dsn, cwd=tmp_path)
    assert migrated.stdout.startswith("applied migrations 1, ")
    with psycopg.connect(empty_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM pgqueue.migrations")]
    assert sorted(versions) == [m.version for m in migrations()]

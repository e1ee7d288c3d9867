"""The FastAPI example (``tests/examples/fastapi_app.py``, shown in the README):
the order row and its job commit together, through FastAPI's test client."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.conftest import ROOT
from tests.support import fetch, scalar

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
# Starlette's test client asks for httpx2; the httpx it still supports is the one pinned.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

EXAMPLE = "tests.examples.fastapi_app"
EXAMPLE_FILE = ROOT / "tests" / "examples" / "fastapi_app.py"
README_BLOCK = re.compile(r"^<!-- example: (?P<path>\S+) -->\n```python\n(?P<body>.*?)^```$",
                          re.MULTILINE | re.DOTALL)


def database_url(dsn: str) -> str:
    """``dsn`` as the postgresql:// URL an application's DATABASE_URL holds."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    user = params.get("user", "")
    password = f":{params['password']}" if params.get("password") else ""
    port = f":{params['port']}" if params.get("port") else ""
    at = "@" if user else ""
    return f"postgresql://{user}{password}{at}{params.get('host', '')}{port}/{params['dbname']}"


@pytest.fixture
def client(empty_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The example app on a fresh migrated database, in FastAPI's test client."""
    from fastapi.testclient import TestClient

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        pgqueue.migrate(conn)
    monkeypatch.setenv("DATABASE_URL", database_url(empty_dsn))
    sys.modules.pop(EXAMPLE, None)
    example = importlib.import_module(EXAMPLE)
    try:
        with TestClient(example.app) as test_client:  # runs the lifespan: tables, dispose
            yield test_client
    finally:
        sys.modules.pop(EXAMPLE, None)


def test_the_job_exists_after_a_200(client: Any, empty_dsn: str) -> None:
    response = client.post("/orders", params={"email": "a@example.com"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert fetch(empty_dsn, "SELECT id, task::text, queue::text, args FROM pgqueue.jobs") == \
        [(body["job_id"], "send_receipt", "email", {"order_id": body["order_id"]})]
    assert fetch(empty_dsn, "SELECT id, email FROM orders") == \
        [(body["order_id"], "a@example.com")]


def test_no_job_and_no_row_after_an_exception_in_the_endpoint(client: Any,
                                                               empty_dsn: str) -> None:
    response = client.post("/orders", params={"email": "a@example.invalid"})
    assert response.status_code == 422, response.text
    assert scalar(empty_dsn, "SELECT count(*) FROM pgqueue.jobs") == 0
    assert scalar(empty_dsn, "SELECT count(*) FROM orders") == 0
    again = client.post("/orders", params={"email": "b@example.com"})  # the pool is fine
    assert again.status_code == 200, again.text
    assert scalar(empty_dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_the_readme_shows_the_example_as_it_is() -> None:
    blocks = {m["path"]: m["body"] for m in README_BLOCK.finditer(
        (ROOT / "README.md").read_text())}
    assert blocks.get("tests/examples/fastapi_app.py") == Path(EXAMPLE_FILE).read_text()

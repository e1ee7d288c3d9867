"""Tags on the command line: jobs list --tag (all-of, --tag-mode any), jobs show, and
cancel / retry --tag with the count to confirm (also as ``jobs cancel`` / ``jobs retry``)."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import Result

from pgqueue.cli import main
from tests.integration.tagged_jobs import finished, live, running, states
from tests.support import cli_runner


def cli(dsn: str, *args: str, answer: str | None = None) -> Result:
    return cli_runner().invoke(main, [*args, "--dsn", dsn], input=answer)


@pytest.fixture
def made(clean_db: str) -> dict[str, int]:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        return {
            "ab": live(conn, ["a", "b"], meta={"source": "cli-test"}),
            "a_failed": finished(conn, ["a"], "failed"),
            "b_cancelled": finished(conn, ["b"], "cancelled"),
            "none": live(conn, []),
            "a_running": running(conn, ["a"]),
        }


def listed(dsn: str, *args: str) -> list[int]:
    result = cli(dsn, "jobs", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [job["id"] for job in json.loads(result.stdout)["jobs"]]


def test_jobs_list_by_tag(clean_db: str, made: dict[str, int]) -> None:
    assert listed(clean_db, "--tag", "a") == sorted(
        [made["ab"], made["a_failed"], made["a_running"]], reverse=True)
    assert listed(clean_db, "--tag", "a", "--tag", "b") == [made["ab"]]
    assert listed(clean_db, "--tag", "a", "--tag", "b", "--tag-mode", "any") == sorted(
        [made["ab"], made["a_failed"], made["b_cancelled"], made["a_running"]], reverse=True)
    assert listed(clean_db, "--tag", "a", "--state", "failed") == [made["a_failed"]]
    assert listed(clean_db, "--tag", "zzz") == []
    table = cli(clean_db, "jobs", "list", "--tag", "b")
    assert table.exit_code == 0
    assert "TAGS" in table.stdout and "a,b" in table.stdout
    assert cli(clean_db, "jobs", "list", "--tag", "zzz").stdout.strip() == "no jobs match"
    rows = json.loads(cli(clean_db, "jobs", "list", "--json", "--tag", "b").stdout)["jobs"]
    assert {r["id"]: r["tags"] for r in rows} == {made["ab"]: ["a", "b"],
                                                  made["b_cancelled"]: ["b"]}


@pytest.mark.parametrize(("args", "message"), [
    (["--tag", ""], "1 to 100 characters"),
    (["--tag", "x" * 101], "1 to 100 characters"),
    (["--tag", "a", "--tag-mode", "some"], "'some' is not one of"),
])
def test_jobs_list_refuses_a_bad_tag(clean_db: str, args: list[str], message: str) -> None:
    result = cli(clean_db, "jobs", "list", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_jobs_show_prints_tags_and_meta(clean_db: str, made: dict[str, int]) -> None:
    result = cli(clean_db, "jobs", "show", str(made["ab"]))
    assert result.exit_code == 0
    assert "tags: a,b" in result.stdout
    assert "meta:\n{\n  \"source\": \"cli-test\"\n}" in result.stdout
    shown = json.loads(cli(clean_db, "jobs", "show", str(made["ab"]), "--json").stdout)
    assert (shown["tags"], shown["meta"]) == (["a", "b"], {"source": "cli-test"})


def test_cancel_by_tag_asks_to_confirm_the_count(clean_db: str, made: dict[str, int]) -> None:
    declined = cli(clean_db, "cancel", "--tag", "a", answer="n\n")
    assert declined.exit_code == 1
    assert "cancel 2 live jobs tagged a (1 queued, 1 running)?" in declined.output
    ids = list(made.values())
    before = {made["ab"]: "queued", made["a_failed"]: "failed",
              made["b_cancelled"]: "cancelled", made["none"]: "queued",
              made["a_running"]: "running"}
    with psycopg.connect(clean_db) as conn:
        assert states(conn, ids) == before
    accepted = cli(clean_db, "jobs", "cancel", "--tag", "a", answer="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert ("cancelled 1 queued job tagged a; asked the workers of 1 running job to stop"
            in accepted.stdout)
    with psycopg.connect(clean_db) as conn:
        assert states(conn, ids) == {**before, made["ab"]: "cancelled"}


def test_cancel_and_retry_by_tag_with_yes_and_json(clean_db: str,
                                                   made: dict[str, int]) -> None:
    result = cli(clean_db, "cancel", "--tag", "b", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"tags": ["b"], "tag_mode": "all", "queue": None,
                                         "cancelled": 1, "requested": 0}
    result = cli(clean_db, "jobs", "retry", "--tag", "a", "--tag", "b", "--tag-mode", "any",
                 "--yes", "--json")
    assert result.exit_code == 0, result.output
    # a_failed, b_cancelled and ab (just cancelled); a_running is live.
    assert json.loads(result.stdout) == {"tags": ["a", "b"], "tag_mode": "any",
                                         "queue": None, "retried": 3}
    with psycopg.connect(clean_db) as conn:
        assert states(conn, list(made.values())) == {
            made["ab"]: "queued", made["a_failed"]: "queued", made["b_cancelled"]: "queued",
            made["none"]: "queued", made["a_running"]: "running"}
    nothing = cli(clean_db, "retry", "--tag", "a")  # nothing to retry: no question
    assert nothing.exit_code == 0 and "retried 0 jobs tagged a" in nothing.stdout


def test_retry_by_tag_declined_changes_nothing(clean_db: str, made: dict[str, int]) -> None:
    result = cli(clean_db, "retry", "--tag", "a", "--queue", "mail", answer="n\n")
    assert result.exit_code == 1
    assert "retry 1 failed or cancelled job tagged a in queue mail?" in result.output
    with psycopg.connect(clean_db) as conn:
        assert states(conn, [made["a_failed"]]) == {made["a_failed"]: "failed"}


@pytest.mark.parametrize("args", [
    ["cancel"], ["cancel", "1", "--tag", "a"], ["cancel", "--queue", "q", "1"],
    ["retry", "--failed", "--tag", "a"], ["retry", "1", "--tag", "a"],
    ["cancel", "--tag", "", "--yes"], ["retry", "--tag", "a", "--queue", "bad queue", "--yes"],
])
def test_cancel_and_retry_refuse_mixed_or_bad_selections(clean_db: str, made: dict[str, int],
                                                         args: list[str]) -> None:
    result = cli(clean_db, *args)
    assert result.exit_code == 2, result.output
    with psycopg.connect(clean_db) as conn:
        assert states(conn, [made["ab"], made["a_failed"]]) == {made["ab"]: "queued",
                                                                made["a_failed"]: "failed"}


def test_existing_cancel_by_id_still_works(clean_db: str, made: dict[str, int]) -> None:
    result = cli(clean_db, "cancel", str(made["ab"]))
    assert result.exit_code == 0 and result.stdout.strip() == f"{made['ab']}\tcancelled"
    assert cli(clean_db, "jobs", "cancel", "999999").exit_code == 3

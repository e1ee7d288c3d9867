"""Tags over HTTP: the API's job list by tag, the job object's tags and meta, bulk actions
by tag (exact counts, nothing else touched), and the dashboard's list, filter and job page."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import psycopg
import pytest

from tests.integration.tagged_jobs import finished, live, running, states
from tests.integration.test_api import Served, call


@pytest.fixture
def serve(dashboards: Callable[..., int]) -> Served:
    return lambda **options: f"http://127.0.0.1:{dashboards(**options)}"


@pytest.fixture
def made(clean_db: str) -> dict[str, int]:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        return {
            "ab": live(conn, ["a", "b"], meta={"source": "api-test"}),
            "a_failed": finished(conn, ["a"], "failed"),
            "b_cancelled": finished(conn, ["b"], "cancelled"),
            "none": live(conn, []),
            "a_running": running(conn, ["a"]),
            "odd": live(conn, ["customer:42", "with space & sign"]),
        }


def ids(base: str, query: str) -> list[int]:
    status, _, body = call(f"{base}/api/jobs?{query}")
    assert status == 200, body
    return [job["id"] for job in json.loads(body)["jobs"]]


def test_api_lists_jobs_by_tag(serve: Served, made: dict[str, int]) -> None:
    base = serve()
    newest = sorted(made.values(), reverse=True)
    assert ids(base, "tag=a") == [i for i in newest if i in
                                  (made["ab"], made["a_failed"], made["a_running"])]
    assert ids(base, "tag=a&tag=b") == [made["ab"]]
    assert ids(base, "tag=a&tag=b&tag_mode=any") == [
        i for i in newest if i not in (made["none"], made["odd"])]
    assert ids(base, "tag=b&state=cancelled") == [made["b_cancelled"]]
    assert ids(base, "tag=a&state=running") == [made["a_running"]]
    assert ids(base, "tag=" + quote("with space & sign")) == [made["odd"]]
    assert ids(base, "tag=nobody") == []
    assert ids(base, "tag=&tag_mode=all") == newest  # a blank tag is no filter
    _, _, body = call(f"{base}/api/jobs?tag=b")
    assert {j["id"]: j["tags"] for j in json.loads(body)["jobs"]} == {
        made["ab"]: ["a", "b"], made["b_cancelled"]: ["b"]}
    status, _, body = call(f"{base}/api/jobs/{made['ab']}")
    job = json.loads(body)
    assert status == 200 and (job["tags"], job["meta"]) == (["a", "b"], {"source": "api-test"})


@pytest.mark.parametrize(("query", "message"), [
    ("tag=" + "x" * 101, "1 to 100 characters"),
    ("tag=a&tag_mode=some", "tag_mode must be 'all' or 'any'"),
    ("tag=a%00b", "without NUL"),
])
def test_api_refuses_a_bad_tag_filter(serve: Served, clean_db: str, query: str,
                                      message: str) -> None:
    status, _, body = call(f"{serve()}/api/jobs?{query}")
    assert status == 400 and message in json.loads(body)["error"], body


def test_api_bulk_actions_by_tag(serve: Served, clean_db: str, made: dict[str, int]) -> None:
    base = serve()
    status, _, body = call(f"{base}/api/jobs/bulk", "POST",
                           {"action": "cancel", "filter": {"tag": "a"}})
    # ab and a_running are live (a_running is asked to stop); a_failed is skipped.
    assert status == 200, body
    assert json.loads(body) == {"action": "cancel", "selected": 3, "changed": 2,
                                "skipped": 1, "more": False}
    with psycopg.connect(clean_db) as conn:
        assert states(conn, list(made.values())) == {
            made["ab"]: "cancelled", made["a_failed"]: "failed",
            made["b_cancelled"]: "cancelled", made["none"]: "queued",
            made["a_running"]: "running", made["odd"]: "queued"}
    status, _, body = call(f"{base}/api/jobs/bulk", "POST", {
        "action": "retry", "filter": {"tag": ["a", "b"], "tag_mode": "any",
                                      "state": "cancelled"}})
    assert status == 200 and json.loads(body)["changed"] == 2, body  # ab and b_cancelled
    with psycopg.connect(clean_db) as conn:
        assert states(conn, [made["ab"], made["b_cancelled"], made["a_failed"]]) == {
            made["ab"]: "queued", made["b_cancelled"]: "queued", made["a_failed"]: "failed"}
    for bad in ({"tag": 5}, {"tag": ["a", 5]}, {"tag": ["x" * 101]},
                {"tag": "a", "tag_mode": "most"}):
        status, _, body = call(f"{base}/api/jobs/bulk", "POST", {"action": "retry",
                                                                 "filter": bad})
        assert status == 400, (bad, body)
    with psycopg.connect(clean_db) as conn:
        assert states(conn, [made["a_failed"]]) == {made["a_failed"]: "failed"}


def test_dashboard_lists_filters_and_shows_tags(serve: Served, clean_db: str,
                                                made: dict[str, int]) -> None:
    base = serve()
    status, _, page = call(f"{base}/jobs?tag=a&tag=b")
    text = page.decode()
    assert status == 200
    assert f'data-job-id="{made["ab"]}"' in text
    assert f'data-job-id="{made["a_failed"]}"' not in text
    assert 'class="tag" href="/jobs?tag=a">a</a>' in text  # each tag links to its jobs
    assert 'name="tag" value="a"' in text and 'name="tag" value="b"' in text  # the filter
    assert 'name="f_tag" value="a"' in text and 'name="f_tag" value="b"' in text  # bulk form
    status, _, page = call(f"{base}/jobs?tag=a&tag=b&tag_mode=any")
    assert page.decode().count("data-job-id=") == 4
    assert 'value="any" selected' in page.decode()
    status, _, page = call(f"{base}/jobs/{made['odd']}")
    text = page.decode()
    assert status == 200 and 'id="job-tags"' in text
    assert "with space &amp; sign" in text and "tag=with+space+%26+sign" in text
    status, _, page = call(f"{base}/jobs/{made['ab']}")
    assert "id=\"job-meta\"" in page.decode() and "api-test" in page.decode()
    status, _, page = call(f"{base}/jobs?tag=" + "x" * 101)
    assert status == 400


def test_dashboard_bulk_form_by_tag_confirms_then_acts(serve: Served, clean_db: str,
                                                       made: dict[str, int]) -> None:
    base = serve()
    _, _, page = call(f"{base}/jobs?tag=a")
    csrf = page.decode().split('name="csrf" value="')[1].split('"')[0]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"csrf={csrf}&action=cancel&all=1&f_tag=a&f_tag=b&f_tag_mode=any"
    status, _, confirm = call(f"{base}/jobs/bulk", "POST", headers=form, raw=body.encode())
    text = confirm.decode()
    assert status == 200 and "Cancel 4 jobs?" in text, text
    assert 'name="f_tag" value="a"' in text and 'name="f_tag" value="b"' in text
    with psycopg.connect(clean_db) as conn:
        assert states(conn, [made["ab"]]) == {made["ab"]: "queued"}
    status, headers, _ = call(f"{base}/jobs/bulk", "POST", headers=form,
                              raw=(body + "&confirm=yes").encode())
    assert status == 303, headers
    assert "2+of+4+jobs+cancelled" in headers["Location"]
    assert "tag=a&tag=b" in headers["Location"]
    with psycopg.connect(clean_db) as conn:
        assert states(conn, list(made.values())) == {
            made["ab"]: "cancelled", made["a_failed"]: "failed",
            made["b_cancelled"]: "cancelled", made["none"]: "queued",
            made["a_running"]: "running", made["odd"]: "queued"}

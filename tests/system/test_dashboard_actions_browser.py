"""The dashboard's remaining actions in headless Chromium: signing in with the
token, cancelling a job, pausing and resuming a queue, a bulk delete, and the
read-only mode (no action shown; a forged POST refused, nothing changed).

Screenshots go to ``PGQUEUE_TEST_ARTIFACTS`` (else the test's tmp dir).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from tests.support import scalar, wait_until
from tests.system.test_dashboard_browser import _retrying, browser  # noqa: F401

TOKEN = "open-sesame-4417"
SHOTS = ("sign-in-refused", "job-cancelled", "queue-paused", "delete-confirm", "deleted",
         "read-only-job", "read-only-overview")


def _shooter(browser: Any, tmp_path: Path) -> tuple[Path, Callable[[str], None]]:  # noqa: F811
    artifacts = Path(os.environ.get("PGQUEUE_TEST_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    return artifacts, lambda name: browser.save_screenshot(str(artifacts / f"{name}.png"))


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(_retrying(lambda: driver.find_element(By.CSS_SELECTOR, css).text))


def _click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    _retrying(lambda: driver.find_element(By.CSS_SELECTOR, css).click())


def _paused(dsn: str, queue: str) -> bool:
    return bool(scalar(dsn, "SELECT paused FROM pgqueue.queues WHERE name = %s", [queue]))


def test_sign_in_cancel_pause_resume_and_delete(browser: Any, clean_db: str,  # noqa: F811
                                                dashboards: Callable[..., int],
                                                tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    artifacts, shot = _shooter(browser, tmp_path)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job = pgqueue.enqueue(conn, "mail.send", {"to": "ada@example.com"}, queue="mail",
                              delay=3600)
    url = f"http://127.0.0.1:{dashboards(token=TOKEN)}"
    browser.get(url + "/jobs")
    assert _text(browser, "h1") == "Sign in"
    browser.find_element(By.NAME, "token").send_keys("not-the-token")
    _click(browser, "form.login button[type=submit]")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "p.error"),
               message="the refusal")
    assert _text(browser, "h1") == "Sign in"
    shot("sign-in-refused")
    _retrying(lambda: browser.find_element(By.NAME, "token").send_keys(TOKEN))
    _click(browser, "form.login button[type=submit]")
    wait_until(lambda: _text(browser, "h1") != "Sign in", message="signed in")

    browser.get(url + f"/jobs/{job}")
    assert _text(browser, "#job-state") == "queued"
    _click(browser, f'form[action="/jobs/{job}/cancel"] button')
    wait_until(lambda: scalar(clean_db, "SELECT state::text FROM pgqueue.all_jobs "
                              "WHERE id = %s", [job]) == "cancelled",
               message="the job to be cancelled")
    wait_until(lambda: _text(browser, "#job-state") == "cancelled",
               message="the page to show it")
    shot("job-cancelled")

    browser.get(url + "/")
    _click(browser, 'form[action="/queues/mail/pause"] button')
    wait_until(lambda: _paused(clean_db, "mail"), message="the queue to pause")
    wait_until(lambda: "paused" in _text(browser, 'tr[data-queue="mail"]'),
               message="the overview to show it")
    shot("queue-paused")
    _click(browser, 'form[action="/queues/mail/resume"] button')
    wait_until(lambda: not _paused(clean_db, "mail"), message="the queue to resume")

    browser.get(url + "/jobs?state=cancelled")
    _click(browser, f'input[name="job"][value="{job}"]')
    assert _text(browser, "[data-selected-count]") == "1 selected"
    _click(browser, 'button[name="action"][value="delete"]')
    wait_until(lambda: "Delete 1 job?" in _text(browser, "h1"), message="the confirmation")
    shot("delete-confirm")
    _click(browser, "#confirm button[type=submit]")
    wait_until(lambda: "1 of 1 job deleted" in _text(browser, "#notice"),
               message="the bulk result")
    shot("deleted")
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.all_jobs WHERE id = %s",
                  [job]) == 0
    for name in SHOTS[:5]:
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name


def test_read_only_shows_no_actions_and_refuses_a_forged_post(
        browser: Any, clean_db: str, dashboards: Callable[..., int],  # noqa: F811
        tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    artifacts, shot = _shooter(browser, tmp_path)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        job = pgqueue.enqueue(conn, "mail.send", {"to": "bob@example.com"}, queue="mail",
                              delay=3600)
    url = f"http://127.0.0.1:{dashboards(read_only=True)}"
    browser.get(url + f"/jobs/{job}")
    assert _text(browser, "#job-state") == "queued"
    assert browser.find_elements(By.CSS_SELECTOR, 'form[method="post"]') == []
    shot("read-only-job")
    browser.get(url + "/")
    _retrying(lambda: browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="mail"]'))
    assert browser.find_elements(By.CSS_SELECTOR, 'form[action$="/pause"]') == []
    shot("read-only-overview")
    # A POST made by hand from the page (as a forged form would) is refused.
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/jobs/{job}/cancel', {{method: 'POST', body: new URLSearchParams()}})"
        ".then(r => done(r.status), e => done(String(e)));")
    assert status == 403
    assert scalar(clean_db, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", [job]) \
        == "queued"
    for name in SHOTS[5:]:
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name

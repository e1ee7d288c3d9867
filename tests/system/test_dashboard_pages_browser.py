"""Every dashboard page and bulk action in headless Chromium, with screenshots.

Queue page, scheduled / retrying / unclaimable jobs, running jobs with their
worker and heartbeat, workers with the leader, search, a bulk retry confirmed
with its count, charts over a day in light and dark mode (finished jobs and
durations from the roll-ups, ready jobs, depth and lag from the leader's
samples), batches and periodic.
Screenshots go to ``PGQUEUE_TEST_ARTIFACTS`` (else the test's tmp dir).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import psycopg

import pgqueue
from tests.support import running_worker, wait_until
from tests.system.test_dashboard_browser import _retrying, browser, dashboard_url  # noqa: F401

SHOTS = ("queue", "scheduled", "running", "workers", "search", "bulk-confirm", "bulk-done",
         "charts", "charts-depth", "charts-dark", "batch", "periodic")


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(_retrying(lambda: driver.find_element(By.CSS_SELECTOR, css).text))


def test_every_page_and_a_bulk_retry(browser: Any, dashboard_url: str, clean_db: str,  # noqa: F811
                                     tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    artifacts = Path(os.environ.get("PGQUEUE_TEST_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    release = threading.Event()
    tasks = pgqueue.Registry()

    @tasks.task(name="report.build", queue="reports", max_attempts=1)
    def build(month: str) -> str:
        if month == "hold":
            release.wait(60)
        elif month.startswith("bad"):
            raise RuntimeError(f"the ledger for {month} is locked")
        return f"report for {month}"

    def shot(name: str) -> None:
        browser.save_screenshot(str(artifacts / f"{name}.png"))

    with running_worker(clean_db, tasks) as worker, psycopg.connect(clean_db,
                                                                    autocommit=True) as conn:
        bad = [build.enqueue(conn, month=f"bad-{n}") for n in range(2)]
        with pgqueue.batch(conn, name="monthly") as batch:
            batch.enqueue(build, {"month": "2024-07"})
        wait_until(lambda: len(worker.finished()) >= 3, message="three jobs to finish")
        held = build.enqueue(conn, month="hold")
        later = build.options(delay=3600).enqueue(conn, month="2024-08")
        nobody = pgqueue.enqueue(conn, "report.unknown", {"month": "x"}, queue="reports")
        retrying = build.options(delay=3600).enqueue(conn, month="2024-09")
        conn.execute("UPDATE pgqueue.jobs SET attempt = 1 WHERE id = %s", [retrying])

        browser.get(dashboard_url + "/queues/reports")
        assert "Queue reports" in _text(browser, "h1")
        assert "unclaimable" in _text(browser, "#queue-counts").lower()
        assert _text(browser, '#queue-counts [data-stat="failed"] .value') == "2"
        shot("queue")
        assert "30d" in _text(browser, '#queue-retention [data-retention="failed"]')
        browser.find_element(By.CSS_SELECTOR, '#retention-form input[name="failed"]') \
            .send_keys("off")
        browser.find_element(By.CSS_SELECTOR, "#retention-form button[type=submit]").click()
        wait_until(lambda: "off this queue" in _text(
            browser, '#queue-retention [data-retention="failed"]'), message="the new retention")
        assert pgqueue.get_retention(conn, "reports") == {"failed": None}

        browser.get(dashboard_url + "/jobs?queue=reports&state=scheduled")
        kinds = {r.get_attribute("data-job-id"): r.get_attribute("data-kind") for r in
                 _retrying(lambda: browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr"))}
        assert kinds == {str(later): "scheduled", str(retrying): "retrying"}
        assert "in " in _text(browser, f'tr[data-job-id="{later}"] td.run-at')
        shot("scheduled")
        browser.get(dashboard_url + "/jobs?state=unclaimable")
        assert _text(browser, "#jobs tbody tr").startswith(str(nobody))

        wait_until(lambda: pgqueue.get_job(conn, held).state == "running",  # type: ignore[union-attr]
                   message="the held job to run")
        browser.get(dashboard_url + "/jobs?state=running")
        wait_until(lambda: _text(browser, f'tr[data-job-id="{held}"] td.heartbeat').endswith("s"),
                   message="a heartbeat age")
        assert _text(browser, f'tr[data-job-id="{held}"] td.running-for').endswith("s")
        shot("running")

        browser.get(dashboard_url + "/workers")
        wait_until(lambda: "leader" in _text(browser, "#workers tbody"), message="the leader")
        assert _text(browser, "#workers tbody td.busy") == "1"
        shot("workers")
        release.set()

        browser.get(dashboard_url + "/jobs")
        _retrying(lambda: browser.find_element(By.NAME, "args").send_keys('{"month": "bad-1"}'))
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait_until(lambda: "args=" in browser.current_url, message="the search")
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job-id]")
        assert [r.get_attribute("data-job-id") for r in rows] == [str(bad[1])]
        shot("search")

        browser.get(dashboard_url + "/jobs?state=failed")
        for job_id in bad:
            _retrying(lambda j=job_id: browser.find_element(
                By.CSS_SELECTOR, f'input[name="job"][value="{j}"]').click())
        assert _text(browser, "[data-selected-count]") == "2 selected"
        wait_until(lambda: "paused" in _text(browser, "#status"), message="refresh to pause")
        browser.find_element(By.CSS_SELECTOR, 'button[name="action"][value="retry"]').click()
        wait_until(lambda: "Retry 2 jobs?" in _text(browser, "h1"), message="the confirmation")
        shot("bulk-confirm")
        browser.find_element(By.CSS_SELECTOR, "#confirm button[type=submit]").click()
        wait_until(lambda: "2 of 2 jobs retried" in _text(browser, "#notice"),
                   message="the bulk result")
        shot("bulk-done")
        wait_until(lambda: len(worker.finished("failed")) >= 4, message="the retries to run")

        def charted(css: str) -> bool:
            browser.get(dashboard_url + "/charts?range=day")
            return bool(browser.find_elements(By.CSS_SELECTOR, css))

        # The leader samples the queues: one is ready (unclaimable), two scheduled.
        wait_until(lambda: charted("#chart-depth polyline") and charted("#chart-lag polyline")
                   and charted("#chart-ready polyline"), timeout=120,
                   message="depth and lag charted from the leader's samples")
        assert browser.find_elements(By.CSS_SELECTOR, "#chart-failed polyline")
        assert browser.find_elements(By.CSS_SELECTOR, "#chart-p50 polyline")
        assert "as of the leader's sample" in _text(browser, "#counts-as-of")
        shot("charts")
        browser.execute_script("document.getElementById('chart-ready').scrollIntoView()")
        shot("charts-depth")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(11, 17, 32)"
        shot("charts-dark")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        browser.get(dashboard_url + "/batches")
        _retrying(lambda: browser.find_element(By.LINK_TEXT, str(batch.id)).click())
        wait_until(lambda: "monthly" in _text(browser, "#batch"), message="the batch page")
        shot("batch")
        browser.get(dashboard_url + "/periodic")
        assert "Periodic" in _text(browser, "h1")
        shot("periodic")

    for name in SHOTS:
        assert (artifacts / f"{name}.png").stat().st_size > 1000, name

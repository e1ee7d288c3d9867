"""The dashboard in headless Chromium: overview, failed jobs, a job page, retry, and it runs.

Needs Debian's ``chromium`` and ``chromium-driver`` and the selenium package
(``.ci/run`` installs them). Skipped when they are missing, except under
``CI=true`` where a missing browser fails the test.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.support import running_worker, serving_dashboard, wait_until

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")


def _need(what: str) -> None:
    message = (f"{what} is not installed "
               "(apt-get install chromium chromium-driver; pip install selenium)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium")
    binary = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver_path = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    if binary is None or driver_path is None:
        _need("chromium or chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def dashboard_url(clean_db: str) -> Iterator[str]:
    with serving_dashboard(clean_db) as port:
        yield f"http://127.0.0.1:{port}"


def _retrying(action: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Run a DOM action, again if the self-refresh replaced the element meanwhile."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt() -> Any:
        try:
            return action() or True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    return wait_until(attempt, timeout=timeout, message="a DOM action")


def test_retry_a_failed_job_from_the_browser(browser: Any, dashboard_url: str, clean_db: str,
                                             tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    artifacts = Path(os.environ.get("PGQUEUE_TEST_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    broken = threading.Event()
    broken.set()
    tasks = pgqueue.Registry()

    @tasks.task(name="report.build", queue="reports", max_attempts=1)
    def build(month: str) -> str:
        if broken.is_set():
            raise RuntimeError(f"the ledger for {month} is locked")
        return f"report for {month}"

    with running_worker(clean_db, tasks) as worker, psycopg.connect(clean_db,
                                                                    autocommit=True) as conn:
        job_id = build.enqueue(conn, month="2024-05")
        build.options(delay=3600).enqueue(conn, month="2024-06")
        wait_until(lambda: worker.finished("failed"), message="the job to fail")

        browser.get(dashboard_url + "/")
        _retrying(lambda: browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="reports"]'))
        row = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="reports"]')
        assert "reports" in row.text
        browser.find_element(By.CSS_SELECTOR, "svg.spark")
        browser.save_screenshot(str(artifacts / "overview.png"))

        browser.get(dashboard_url + "/jobs")
        Select(browser.find_element(By.ID, "state")).select_by_visible_text("failed")
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait_until(lambda: "state=failed" in browser.current_url, message="the filter")
        rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr[data-job-id]")
        assert [r.get_attribute("data-job-id") for r in rows] == [str(job_id)]
        browser.save_screenshot(str(artifacts / "failed-jobs.png"))

        _retrying(lambda: browser.find_element(By.LINK_TEXT, str(job_id)).click())
        wait_until(lambda: browser.current_url.endswith(f"/jobs/{job_id}"), message="job page")
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "the ledger for 2024-05 is locked" in page
        assert "Traceback" in page
        assert browser.find_element(By.ID, "job-state").text == "failed"
        browser.save_screenshot(str(artifacts / "job-failed.png"))

        broken.clear()  # the condition is fixed: the next attempt succeeds
        _retrying(lambda: browser.find_element(
            By.CSS_SELECTOR, f'form[action="/jobs/{job_id}/retry"] button').click())
        wait_until(lambda: "notice=" in browser.current_url, message="the retry redirect")
        # The page refreshes itself: no reload, the state turns to succeeded.
        wait_until(lambda: _retrying(lambda: browser.find_element(By.ID, "job-state").text)
                   == "succeeded", timeout=30, message="the retried job to succeed")
        assert browser.find_elements(By.CSS_SELECTOR, f'form[action="/jobs/{job_id}/retry"]') \
            == []
        browser.save_screenshot(str(artifacts / "job-succeeded.png"))

        detail = pgqueue.get_job(conn, job_id)
        assert detail is not None and detail.id == job_id
        assert (detail.state, detail.attempt, detail.result) == ("succeeded", 1,
                                                                 "report for 2024-05")
        assert len(detail.errors) == 1  # the first failure is kept in the history

    for name in ("overview.png", "failed-jobs.png", "job-failed.png", "job-succeeded.png"):
        assert (artifacts / name).stat().st_size > 1000

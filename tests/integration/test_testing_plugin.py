"""pgqueue.testing as a user's suite uses it: the pytest plugin (installed by the
package's entry point), drain and the assertions, run in a pytester subprocess."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

APP = '''
import pgqueue

tasks = pgqueue.Registry()
SENT = []


@tasks.task(name="signup.welcome", queue="email")
def send_welcome(email: str) -> None:
    SENT.append(email)


@tasks.task(name="signup.audit")
async def audit(email: str, ctx: pgqueue.JobContext) -> dict:
    send_welcome.enqueue(ctx.connection, email=email)
    return {"audited": email}


def sign_up(conn, email):
    conn.execute("CREATE TABLE IF NOT EXISTS users (email text PRIMARY KEY)")
    conn.execute("INSERT INTO users VALUES (%s)", [email])
    audit.enqueue(conn, email=email)
'''

USER_TESTS = '''
import pytest

from myapp import SENT, sign_up, tasks
from pgqueue.testing import assert_enqueued, drain, enqueued_jobs, refute_enqueued


def test_sign_up_enqueues_and_runs(pgqueue_conn):
    sign_up(pgqueue_conn, "a@example.com")
    assert_enqueued(pgqueue_conn, task="signup.audit", args={"email": "a@example.com"})
    refute_enqueued(pgqueue_conn, task="signup.welcome")
    result = drain(pgqueue_conn, tasks)
    assert result.outcomes == [("signup.audit", "succeeded"), ("signup.welcome", "succeeded")]
    assert result[0].result == {"audited": "a@example.com"}
    assert SENT == ["a@example.com"]
    assert enqueued_jobs(pgqueue_conn) == []


def test_the_previous_test_was_rolled_back(pgqueue_conn):
    row = pgqueue_conn.execute("SELECT to_regclass('users'), count(*) FROM pgqueue.jobs")
    assert row.fetchone() == (None, 0)


def test_failure_message_lists_what_was_enqueued(pgqueue_conn):
    sign_up(pgqueue_conn, "b@example.com")
    with pytest.raises(AssertionError) as info:
        assert_enqueued(pgqueue_conn, task="signup.welcome")
    message = str(info.value)
    assert "expected a job enqueued with task='signup.welcome', found 0" in message
    assert 'signup.audit queue=\\'default\\' args={"email": "b@example.com"}' in message
'''


@pytest.fixture
def user_project(pytester: pytest.Pytester, admin_dsn: str,
                 monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PGQUEUE_TEST_DSN", admin_dsn)
    pytester.makepyfile(myapp=APP, test_signup=USER_TESTS)
    return pytester


def test_a_user_suite_enqueues_drains_and_asserts(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_dsn_option_wins_and_the_database_is_dropped(
        user_project: pytest.Pytester, admin_dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("PGQUEUE_TEST_DSN", "postgresql://nobody@127.0.0.1:1/none")

    def plugin_databases() -> set[str]:
        # Named as the plugin names its session's database: other test sessions
        # and benchmarks on the same server create and drop databases of their own.
        with psycopg.connect(admin_dsn) as conn:
            return {name for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^pgqueue_test_[0-9a-f]{12}$'")}

    before = plugin_databases()
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider",
                                               f"--pgqueue-dsn={admin_dsn}")
    result.assert_outcomes(passed=3)
    assert plugin_databases() - before == set()


def test_without_a_server_the_fixtures_say_how_to_name_one(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_TEST_DSN", raising=False)
    pytester.makepyfile(test_x="def test_x(pgqueue_conn):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no PostgreSQL server given; pass --pgqueue-dsn=DSN*"])


def test_the_plugin_is_inert_unless_its_fixtures_are_used(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGQUEUE_TEST_DSN", "postgresql://nobody@127.0.0.1:1/none")
    pytester.makepyfile(test_x='''
import sys

def test_nothing_but_the_plugin_loaded(request):
    assert "pgqueue.testing.plugin" in sys.modules
    assert request.config.pluginmanager.has_plugin("pgqueue")
    heavy = ("pgqueue.worker", "pgqueue.testing.draining", "pgqueue.testing.assertions")
    assert not [m for m in sys.modules if m.startswith(heavy)]
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:pgqueue") \
        .assert_outcomes(failed=1)

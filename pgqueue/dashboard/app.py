"""Routing: which page or API handler answers a request, behind the guards.

The server is the standard library's ThreadingHTTPServer; database work goes
through a small psycopg_pool ConnectionPool of autocommit connections, so each
action commits at once. With a read DSN, pages and API GETs read on a second
pool, the read replica's, and every POST on the primary's (:mod:`.reads`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlencode

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from .. import _dsn
from ..errors import ReplicaUnavailableError
from . import api, api_more, api_retention, bulk, data, page_jobs, pages, reads, site
from .http import MAX_BODY_BYTES, SECURITY_HEADERS, Guard, HostCheck, HttpError, Request, Response
from .openapi import openapi_document

__all__ = ["Dashboard", "configure_connection", "make_server"]

log = logging.getLogger(__name__)

_JOB = re.compile(r"^/jobs/(\d{1,19})$")
_JOB_ACTION = re.compile(r"^/jobs/(\d{1,19})/(retry|cancel)$")
_QUEUE = re.compile(r"^/queues/([^/]{1,200})$")
_QUEUE_ACTION = re.compile(r"^/queues/([^/]{1,200})/(retry-failed|pause|resume)$")
_QUEUE_RETENTION = re.compile(r"^/queues/([^/]{1,200})/retention$")
_STATIC = {"dashboard.js": "text/javascript; charset=utf-8",
           "dashboard.css": "text/css; charset=utf-8",
           "screenshot.png": "image/png"}
#: How long a request waits for a pooled connection before answering 503.
POOL_TIMEOUT_SECONDS = 10.0
_CONTROL_OF_ACTION = {"cancel": "cancel", "pause": "pause_queue", "resume": "resume_queue"}


class Dashboard:
    """The dashboard and API as one callable: ``handle(Request) -> Response``.

    ``hosts`` decides which Host headers are answered; :func:`make_server` sets it
    once the server is bound. Without it every Host is answered. ``pool`` is the
    primary's pool, or :class:`~.reads.Sources` with a read replica's too.
    """

    def __init__(self, pool: ConnectionPool[Any] | reads.Sources, *, token: str | None = None,
                 read_only: bool = False, hosts: HostCheck | None = None) -> None:
        self.sources = pool if isinstance(pool, reads.Sources) else reads.Sources(pool)
        self.pool = self.sources.pool
        self.guard = Guard(token)
        self.read_only = read_only
        self.hosts = hosts

    # --- entry point -----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        host = request.header("Host")
        if self.hosts is not None and not self.hosts.allows(host):
            response = self.hosts.refusal(host)
            response.headers.update(SECURITY_HEADERS)
            return response
        is_api = request.path.startswith("/api/")
        try:
            response = self._route(request)
        except HttpError as exc:
            response = (Response.json({"error": exc.message}, exc.status) if is_api
                        else Response.html(pages.error_page(exc.status, exc.message), exc.status))
        except ReplicaUnavailableError as exc:
            log.warning("read replica unavailable", extra={"error": str(exc)})
            response = (Response.json({"error": str(exc), "read_from": "replica"}, 503)
                        if is_api else Response.html(pages.error_page(503, str(exc)), 503))
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("database unavailable", extra={"error": str(exc)})
            message = "the database is unavailable; try again shortly"
            response = (Response.json({"error": message}, 503) if is_api
                        else Response.html(pages.error_page(503, message), 503))
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items()
                                 if k not in response.headers})
        return response

    def _route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/login":
            return self._login(request)
        if not self.guard.token_ok(request):
            return self._unauthorised(request)
        if request.method == "POST":
            self.guard.check_same_site(request)
            if self.read_only:
                raise HttpError(403, "the dashboard is read-only")
        elif request.method not in ("GET", "HEAD"):
            raise HttpError(405, f"method {request.method} is not allowed")
        if path.startswith("/api/"):
            return self._api(request, path[len("/api"):])
        if path.startswith("/partial/"):
            inner = Request("GET", request.target[len("/partial"):], request.headers)
            return Response.json({"html": self._page_body(inner)})
        if request.method == "POST":
            return self._form_action(request)
        return Response.html(pages.layout(site.title(path), self._page_body(request),
                                          refresh="/partial" + request.target))

    # --- pages -----------------------------------------------------------------------

    def view(self) -> pages.View:
        return pages.View(self.guard.csrf_token, self.read_only,
                          frozenset(api.controls()))

    def _page_body(self, request: Request) -> str:
        with self.sources.read() as conn:
            lag = self.sources.lag(conn)
            return reads.banner(lag) + site.render(conn, request, self.view(), pages.utc_now())

    def _form_action(self, request: Request) -> Response:
        form = request.form()
        self.guard.check_form(form)
        with self.sources.write() as conn:
            if request.path == "/jobs/bulk":
                return self._bulk_form(conn, request, form)
            match = _JOB_ACTION.match(request.path)
            if match:
                job_id, action = int(match[1]), match[2]
                if action == "retry":
                    _, payload = api.retry_job(conn, job_id)
                    notice = payload["message"]
                else:
                    self._need_control("cancel")
                    body = api.post_cancel(conn, request, job_id).body.decode()
                    notice = f"cancel: {body}"
                return Response.redirect(f"/jobs/{job_id}?" + urlencode({"notice": notice}))
            match = _QUEUE_ACTION.match(request.path)
            if match:
                queue, action = match[1], match[2]
                if action == "retry-failed":
                    api.post_retry_failed(conn, request, queue)
                else:
                    self._need_control(_CONTROL_OF_ACTION[action])
                    api.post_pause(conn, request, queue, pause=action == "pause")
                return Response.redirect("/")
            match = _QUEUE_RETENTION.match(request.path)
            if match:
                queue = unquote(match[1])
                api_retention.change(conn, queue, api_retention.form_changes(form))
                return Response.redirect(pages.queue_link(queue))
        raise HttpError(404, f"no action at {request.path}")

    def _bulk_form(self, conn: Any, request: Request, form: dict[str, str]) -> Response:
        action = bulk.check_action(form.get("action"))
        if action == "cancel":
            self._need_control("cancel")
        picked = request.form_values("job")
        tags = [t for t in request.form_values("f_tag") if t]
        wanted = None
        if form.get("all") == "1":
            wanted = data.parse_filter({k[2:]: v or None for k, v in form.items()
                                        if k.startswith("f_") and k != "f_tag"}, tags=tags)
        elif not picked:
            raise HttpError(400, "select at least one job, or 'all jobs matching this filter'")
        ids, more = bulk.select_ids(conn, ids=[api.parse_int(i, "job") or 0 for i in picked],
                                    wanted=wanted, now=pages.utc_now())
        if form.get("confirm") != "yes":
            body = page_jobs.confirm_page(self.view(), action, ids, more, form, picked, tags)
            return Response.html(pages.layout("Confirm", body))
        result = bulk.apply(conn, action, ids, more=more)
        back: dict[str, str | list[str]] = {k[2:]: v for k, v in form.items()
                                            if k.startswith("f_") and k != "f_tag"}
        back["tag"] = tags
        return Response.redirect("/jobs?" + urlencode({**back, "notice": result.message()},
                                                      doseq=True))

    # --- API -------------------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        if path == "/openapi.json":
            return Response.json(openapi_document(sorted(api.controls())))
        response: Response | None = None
        if request.method == "POST":
            # Every API POST is JSON: no cross-site form can send that content type.
            request.json()
            with self.sources.write() as conn:
                response = self._api_post(conn, request, path)
        elif request.method == "GET" and path == "/replica":
            return reads.get_replica(self.sources)
        elif request.method == "GET":
            with self.sources.read() as conn:
                lag = self.sources.lag(conn)
                response = self._api_get(conn, request, path)
            if response is not None:
                return reads.with_read_from(response, lag, field=path in ("/queues", "/jobs"))
        if response is not None:
            return response
        known = path in ("/queues", "/jobs", "/workers", "/jobs/bulk", "/charts", "/replica") \
            or any(p.match(path) for p in (_JOB, _JOB_ACTION, _QUEUE_ACTION, _QUEUE,
                                           _QUEUE_RETENTION))
        if known:
            raise HttpError(405, f"method {request.method} is not allowed on /api{path}")
        raise HttpError(404, f"no API endpoint at /api{path}")

    def _api_get(self, conn: Any, request: Request, path: str) -> Response | None:
        handler: Callable[..., Response] | None = {
            "/queues": api.get_queues, "/jobs": api_more.list_jobs,
            "/workers": api.get_workers, "/charts": api_more.get_charts,
        }.get(path)
        if handler is not None:
            return handler(conn, request)
        match = _JOB.match(path)
        if match:
            return api.get_job(conn, request, self._job_id(match[1]))
        match = _QUEUE.match(path)
        if match:
            return api_more.get_queue(conn, request, unquote(match[1]))
        match = _QUEUE_RETENTION.match(path)
        if match:
            return api_retention.get_retention_api(conn, request, unquote(match[1]))
        return None

    def _api_post(self, conn: Any, request: Request, path: str) -> Response | None:
        handler: Callable[..., Response] | None = {
            "/jobs": api.post_enqueue, "/jobs/bulk": api_more.post_bulk,
        }.get(path)
        if handler is not None:
            return handler(conn, request)
        match = _JOB_ACTION.match(path)
        if match:
            if match[2] == "retry":
                return api.post_retry(conn, request, self._job_id(match[1]))
            self._need_control("cancel")
            return api.post_cancel(conn, request, self._job_id(match[1]))
        match = _QUEUE_ACTION.match(path)
        if match:
            if match[2] == "retry-failed":
                return api.post_retry_failed(conn, request, match[1])
            self._need_control(_CONTROL_OF_ACTION[match[2]])
            return api.post_pause(conn, request, match[1], pause=match[2] == "pause")
        match = _QUEUE_RETENTION.match(path)
        if match:
            return api_retention.post_retention(conn, request, unquote(match[1]))
        return None

    @staticmethod
    def _job_id(text: str) -> int:
        job_id = int(text)
        if not 1 <= job_id <= 2**63 - 1:
            raise HttpError(400, f"job id must be from 1 to {2**63 - 1}, got {text}")
        return job_id

    @staticmethod
    def _need_control(name: str) -> None:
        if name not in api.controls():
            raise HttpError(404, f"{name} is not available in this version of pgqueue")

    # --- assets and sign-in -----------------------------------------------------------

    def _static(self, name: str) -> Response:
        kind = _STATIC.get(name)
        if kind is None:
            raise HttpError(404, "no such asset")
        asset = resources.files("pgqueue.dashboard") / "static" / name
        if not asset.is_file():
            raise HttpError(404, "no such asset")
        response = Response(200, asset.read_bytes(), kind)
        response.headers["Cache-Control"] = "max-age=300"
        return response

    def _unauthorised(self, request: Request) -> Response:
        given = request.arg("token") if request.method == "GET" else None
        if given is not None and self.guard.check_token(given):
            rest = {k: v[0] for k, v in request.query.items() if k != "token"}
            response = Response.redirect(request.path + ("?" + urlencode(rest) if rest else ""))
            response.headers["Set-Cookie"] = self.guard.token_cookie()
            return response
        if request.path.startswith(("/api/", "/partial/")):
            response = Response.json({"error": "a token is required: send "
                                      "'Authorization: Bearer <token>'"}, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="pgqueue"'
            return response
        return Response.html(pages.login_page(), 401)

    def _login(self, request: Request) -> Response:
        if request.method != "POST":
            return Response.html(pages.login_page())
        self.guard.check_same_site(request)
        token = request.form().get("token", "")
        if self.guard.token is None or self.guard.check_token(token):
            response = Response.redirect("/")
            response.headers["Set-Cookie"] = self.guard.token_cookie()
            return response
        return Response.html(pages.login_page("That token is not right."), 401)


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Turn JIT off on a dashboard connection of its own (not behind a transaction
    pooler, where a session setting would reach other clients): the planner's
    cost of a search over a BRIN range or of a chart passes jit_above_cost, and
    compiling took 150-250 ms of pages that run in tens (measured at 10,000,000
    finished jobs)."""
    conn.execute("SET jit = off")


class _Handler(BaseHTTPRequestHandler):
    server_version = "pgqueue-dashboard"
    sys_version = ""
    dashboard: Dashboard

    def _serve(self) -> None:
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            # The body's end is unknown: answer, then close rather than read on.
            self.close_connection = True
            self._send(Response(400, b"Content-Length must be a whole number of bytes\n",
                                "text/plain; charset=utf-8"))
            return
        length = int(text)
        if length > MAX_BODY_BYTES:
            self.send_error(413, "request body too large")
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, dict(self.headers.items()), body)
        try:
            response = self.dashboard.handle(request)
        except Exception:
            log.exception("dashboard request failed", extra={"path": request.path})
            response = Response.json({"error": "internal error; see the server log"}, 500)
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


def make_server(dsn: str, *, host: str = "127.0.0.1", port: int = 8080,
                token: str | None = None, read_only: bool = False,
                allowed_hosts: Sequence[str] = (), pool_size: int = 4,
                pooler: str | None = None, read_dsn: str | None = None,
                pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS,
                ) -> tuple[ThreadingHTTPServer, reads.Sources]:
    """A ready (not yet serving) HTTP server and its connection pools.

    It answers requests whose Host names the address it listens on, ``localhost``
    on loopback, or one of ``allowed_hosts`` (``name`` or ``name:port``); others get
    421 (see :class:`~pgqueue.dashboard.http.HostCheck`). Call
    ``server.serve_forever()``; on the way out ``server.server_close()`` and
    ``pools.close()``.

    ``pooler`` (else PGQUEUE_POOLER, else ``none``) names what ``dsn`` (and
    ``read_dsn``) go through; with ``transaction`` the pools' connections prepare
    nothing server-side, so any server session of the pooler can run their statements.
    ``read_dsn``: a read replica for the pages and API GETs (see :mod:`.reads`);
    a request waits at most ``pool_timeout_seconds`` for a connection.
    """
    options: dict[str, Any] = {"autocommit": True}
    pooled = _dsn.resolve_pooler(pooler) == "transaction"
    if pooled:
        options["prepare_threshold"] = None

    def pool_of(target: str, name: str) -> ConnectionPool[Any]:
        return ConnectionPool(target, min_size=1, max_size=pool_size, kwargs=options,
                              timeout=pool_timeout_seconds, open=True, name=name,
                              configure=None if pooled else configure_connection)

    sources = reads.Sources(pool_of(dsn, "pgqueue-dashboard"))
    if read_dsn:
        sources = reads.Sources(sources.pool, pool_of(read_dsn, "pgqueue-dashboard-read"),
                                read_dsn)
    dashboard = Dashboard(sources, token=token, read_only=read_only)
    handler = type("DashboardHandler", (_Handler,), {"dashboard": dashboard})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError:
        sources.close()
        raise
    server.daemon_threads = True
    bound = server.server_address
    dashboard.hosts = HostCheck(host, (str(bound[0]), int(bound[1])), allowed_hosts)
    return server, sources

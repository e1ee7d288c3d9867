"""The OpenAPI 3.0 document served at ``/api/openapi.json``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..admin import MAX_LIST_LIMIT
from ..retention import FINAL_STATES, MAX_KEEP_SECONDS, MIN_KEEP_SECONDS
from ..types import JobState
from .data import KINDS
from .reads import openapi_paths

__all__ = ["openapi_document"]

_MAX_ID = 2**63 - 1
_TIME = {"type": "string", "format": "date-time"}
_NTIME = {"type": "string", "format": "date-time", "nullable": True}
_NSTR = {"type": "string", "nullable": True}
_QUEUE = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
_TASK = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$"}
_STATE = {"type": "string", "enum": [s.value for s in JobState]}
_KIND = {"type": "string", "enum": list(KINDS)}
_DIGITS = {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}
_SEARCH_TEXT = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000]*$"}
_TAG = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "^[^\\u0000]*$"}
_TAGS = {"type": "array", "items": {"type": "string"}}
_TAG_MODE = {"type": "string", "enum": ["all", "any"], "default": "all"}

_JOB_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "queue", "task", "state", "attempt", "max_attempts"],
    "properties": {
        "id": {"type": "integer"}, "queue": {"type": "string"}, "task": {"type": "string"},
        "state": _STATE, "priority": {"type": "integer"}, "attempt": {"type": "integer"},
        "max_attempts": {"type": "integer"}, "run_at": _TIME, "created_at": _TIME,
        "started_at": _NTIME, "finished_at": _NTIME, "worker_id": _NSTR, "last_error": _NSTR,
        "tags": _TAGS,
    },
}
_JOB_ROW: dict[str, Any] = {
    "type": "object",
    "required": [*_JOB_SUMMARY["required"], "kind"],
    "properties": {
        **_JOB_SUMMARY["properties"], "kind": _KIND, "heartbeat_at": _NTIME,
        "unique_key": _NSTR, "batch_id": {"type": "integer", "nullable": True},
    },
}
_PROGRESS: dict[str, Any] = {
    "type": "object", "nullable": True,
    "description": "The latest progress the job reported (ctx.set_progress).",
    "properties": {"done": {"type": "number", "minimum": 0},
                   "total": {"type": "number", "minimum": 0, "nullable": True},
                   "message": _NSTR},
}
_JOB_DETAIL: dict[str, Any] = {
    "type": "object",
    "required": [*_JOB_SUMMARY["required"], "args", "errors"],
    "properties": {
        **_JOB_SUMMARY["properties"],
        "args": {"type": "object"}, "heartbeat_at": _NTIME, "unique_key": _NSTR,
        "errors": {"type": "array", "items": {"type": "object"}},
        "trace_context": _NSTR, "trace_id": _NSTR, "result": {"nullable": True},
        "worker_host": _NSTR, "worker_pid": {"type": "integer", "nullable": True},
        "snoozes": {"type": "integer", "minimum": 0},
        "progress": _PROGRESS, "meta": {"type": "object"},
    },
}
_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string", "minLength": 1}}}
_ACTION_BODY = {"required": True, "description": "An empty JSON object.",
                "content": {"application/json": {"schema": {"type": "object",
                                                            "maxProperties": 0}}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input", 401: "Token required", 403: "Refused (read-only or "
            "cross-site)", 404: "Not found", 409: "Not possible in the job's state",
            415: "Not JSON", 503: "Database unavailable"}
    return {str(c): _ok({"$ref": "#/components/schemas/Error"}, text[c])
            for c in (*codes, 401, 503)}


def _id_param() -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_ID}}


def _queue_param() -> dict[str, Any]:
    return {"name": "queue", "in": "path", "required": True, "schema": _QUEUE}


def _action() -> dict[str, Any]:
    """An action's request body: an empty JSON object."""
    return {"requestBody": _ACTION_BODY}


def openapi_document(controls: Iterable[str] = ()) -> dict[str, Any]:
    """The API description; cancel, pause and resume appear when available."""
    paths: dict[str, Any] = {
        "/api/queues": {"get": _list_queues()},
        "/api/jobs": {"get": _list_jobs(), "post": _enqueue_job()},
        "/api/jobs/{id}": {"get": _get_job()},
        "/api/jobs/{id}/retry": {"post": _retry_job()},
        "/api/queues/{queue}/retry-failed": {"post": _retry_failed()},
        "/api/workers": {"get": _list_workers()},
        "/api/queues/{queue}": {"get": _get_queue()},
        "/api/queues/{queue}/retention": {"get": _get_retention(), "post": _set_retention()},
        "/api/jobs/bulk": {"post": _bulk()},
        "/api/charts": {"get": _charts()},
        **_control_paths(set(controls)),
        **openapi_paths(_errors()),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "pgqueue", "version": "1",
                 "description": "Inspect and operate pgqueue queues. With a token configured, "
                                "send 'Authorization: Bearer <token>'."},
        "paths": paths,
        "components": {
            "schemas": {"Job": _JOB_SUMMARY, "JobRow": _JOB_ROW, "JobDetail": _JOB_DETAIL,
                        "Error": _ERROR,
                        "RetryResult": {"type": "object", "required": ["id", "outcome"],
                                        "properties": {"id": {"type": "integer"},
                                                       "outcome": {"type": "string"},
                                                       "message": {"type": "string"}}}},
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }


# --- one operation each, in the document's order --------------------------------------


def _list_queues() -> dict[str, Any]:
    return {
        "summary": "Every queue with its counts (the pgqueue.queue_stats view)",
        "operationId": "listQueues",
        "responses": {"200": _ok({"type": "object", "required": ["queues"], "properties": {
            "queues": {"type": "array", "items": {"type": "object", "required": ["queue"]}},
        }}), **_errors()}}


def _list_jobs() -> dict[str, Any]:
    return {
        "summary": "Jobs newest first, filtered, one page at a time",
        "operationId": "listJobs",
        "parameters": [
            {"name": "queue", "in": "query", "schema": _QUEUE},
            {"name": "state", "in": "query", "description": "a job state, or what a "
             "live job waits for: ready, scheduled (run_at ahead, retries included), "
             "retrying, blocked, unclaimable", "schema": _KIND},
            {"name": "task", "in": "query", "schema": _TASK},
            {"name": "id", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": _MAX_ID}},
            {"name": "args", "in": "query", "description": "a JSON object the args "
             "contain (jsonb @>)", "content": {"application/json": {"schema": {
                 "type": "object", "maxProperties": 3,
                 "additionalProperties": {"type": "integer"},
                 "propertyNames": {"pattern": "^[^\\u0000]*$"}}}}},
            {"name": "error", "in": "query", "description": "text in the last error "
             "(any case)", "schema": {"type": "string", "maxLength": 255,
                                      "pattern": "^[^\\u0000]*$"}},
            {"name": "unique_key", "in": "query", "schema": {"type": "string",
                                                             "maxLength": 255,
                                                             "pattern": "^[^\\u0000]*$"}},
            {"name": "batch", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                        "maximum": _MAX_ID}},
            {"name": "since", "in": "query", "description": "finished (live jobs: "
             "created) at or after; a search of history by args, error or unique key "
             "without it covers the last 24 hours", "schema": _TIME},
            {"name": "until", "in": "query", "description": "finished (live: created) "
             "before", "schema": _TIME},
            {"name": "tag", "in": "query", "description": "jobs with this tag; repeat it "
             "for several (tag=a&tag=b), combined as tag_mode says",
             "schema": {"type": "array", "items": _TAG, "maxItems": 100},
             "style": "form", "explode": True},
            {"name": "tag_mode", "in": "query", "description": "all: jobs with every tag "
             "given; any: jobs with at least one", "schema": _TAG_MODE},
            {"name": "limit", "in": "query",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT}},
            {"name": "cursor", "in": "query", "description": "next_cursor of the "
             "previous page", "schema": {"type": "integer", "minimum": 1,
                                         "maximum": _MAX_ID}},
        ],
        "responses": {"200": _ok({"type": "object", "required": ["jobs", "next_cursor"],
                                  "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/JobRow"}},
            "next_cursor": {"type": "integer", "nullable": True},
            "searched_since": _NTIME}}),
            **_errors(400)}}


def _enqueue_job() -> dict[str, Any]:
    return {
        "summary": "Enqueue a job. NOT transactional: the job is committed at once, "
                   "apart from any work of the caller; enqueue from Python in your "
                   "own transaction when you can. Strings anywhere in the body "
                   "must not hold a NUL character (PostgreSQL cannot store it).",
        "operationId": "enqueueJob",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["task"], "additionalProperties": False,
            "properties": {
                "task": _TASK, "args": {"type": "object"}, "queue": _QUEUE,
                "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
                "delay": {"type": "number", "minimum": 0, "maximum": 86400 * 365},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
                "unique_key": {"type": "string", "minLength": 1, "maxLength": 255,
                               "pattern": "^[^\\u0000]*$"},
                "tags": {"type": "array", "description": "At most 20 distinct tags; "
                         "repeats are dropped, the first kept",
                         "items": {"type": "string", "minLength": 1, "maxLength": 100,
                                   "pattern": "^[^\\u0000]*$"}},
                "meta": {"type": "object"},
                "unique_for": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                               "description": "Seconds a job created with unique_key holds "
                                              "it, finished or not (throttle)"},
                "debounce": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                             "description": "Seconds after the last enqueue of unique_key "
                                            "the job runs (a pending job is pushed out)"},
                "on_conflict": {"type": "string", "enum": ["keep", "replace"]},
            }}}}},
        "responses": {"201": _ok({"type": "object", "required": ["id"], "properties": {
            "id": {"type": "integer"}}}, "Enqueued"), **_errors(400, 403, 415),
            "429": _queue_full()}}


def _queue_full() -> dict[str, Any]:
    """429: the queue is at its max_depth; nothing was inserted."""
    response = _ok({"type": "object", "required": ["error", "queue", "max_depth", "depth"],
                    "properties": {"error": {"type": "string", "minLength": 1},
                                   "queue": {"type": "string"},
                                   "max_depth": {"type": "integer", "minimum": 1},
                                   "depth": {"type": "integer", "minimum": 0}}},
                   "Queue full (at its max_depth): nothing was inserted; retry after "
                   "Retry-After seconds")
    response["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying",
                                           "schema": {"type": "integer", "minimum": 1}}}
    return response


def _get_job() -> dict[str, Any]:
    return {
        "summary": "One job with its args, errors and timings", "operationId": "getJob",
        "parameters": [_id_param()],
        "responses": {"200": _ok({"$ref": "#/components/schemas/JobDetail"}),
                      **_errors(400, 404)}}


def _retry_job() -> dict[str, Any]:
    return {
        "summary": "Queue a failed or cancelled job again; it keeps its id",
        "operationId": "retryJob", "parameters": [_id_param()], **_action(),
        "responses": {"200": _ok({"$ref": "#/components/schemas/RetryResult"}),
                      **_errors(400, 403, 404, 409, 415)}}


def _retry_failed() -> dict[str, Any]:
    return {
        "summary": "Queue again every failed job of a queue",
        "operationId": "retryFailed", "parameters": [_queue_param()], **_action(),
        "responses": {"200": _ok({"type": "object", "required": ["queue", "retried"],
                                  "properties": {"queue": {"type": "string"},
                                                 "retried": {"type": "integer"}}}),
                      **_errors(400, 403, 415)}}


def _list_workers() -> dict[str, Any]:
    return {
        "summary": "Registered workers with busy slots and heartbeat age",
        "operationId": "listWorkers",
        "responses": {"200": _ok({"type": "object", "required": ["workers"], "properties": {
            "workers": {"type": "array", "items": {"type": "object"}}}}), **_errors()}}


def _control_paths(available: set[str]) -> dict[str, Any]:
    """Cancel, pause and resume: only those the dashboard offers."""
    paths: dict[str, Any] = {}
    if "cancel" in available:
        paths["/api/jobs/{id}/cancel"] = {"post": {
            "summary": "Cancel a queued job, or ask the worker to stop a running one",
            "operationId": "cancelJob", "parameters": [_id_param()], **_action(),
            "responses": {"200": _ok({"type": "object", "required": ["id", "outcome"]}),
                          **_errors(400, 403, 404, 415)}}}
    for verb in ("pause", "resume"):
        if f"{verb}_queue" in available:
            paths[f"/api/queues/{{queue}}/{verb}"] = {"post": {
                "summary": f"{verb.capitalize()} a queue", "operationId": f"{verb}Queue",
                "parameters": [_queue_param()], **_action(),
                "responses": {"200": _ok({"type": "object", "required": ["queue", "paused"]}),
                              **_errors(400, 403, 415)}}}
    return paths


def _get_queue() -> dict[str, Any]:
    return {
        "summary": "One queue: its queue_stats row, limits and what they count now",
        "operationId": "getQueue", "parameters": [_queue_param()],
        "responses": {"200": _ok({"type": "object", "required": ["queue", "paused"]}),
                      **_errors(400, 404)}}


_KEEP = {"type": "object", "required": ["keep", "keep_seconds", "source"], "properties": {
    "keep": {"type": "string", "description": "a duration such as 7d, or off (for ever)"},
    "keep_seconds": {"type": "number", "nullable": True},
    "source": {"type": "string", "enum": ["queue", "default"],
               "description": "queue: this queue's override; default: no override, the "
                              "workers' --retention applies (shown with its built-in "
                              "default: the dashboard cannot see the workers' option)"}}}
_RETENTION = {"type": "object", "required": ["queue", "retention"], "properties": {
    "queue": {"type": "string"}, "note": {"type": "string"},
    "retention": {"type": "object", "required": list(FINAL_STATES),
                  "properties": {state: _KEEP for state in FINAL_STATES}}}}
_KEEP_INPUT = {"description": "seconds, a duration with its unit (45s, 30m, 12h, 7d, 2w) "
                              "from 1 minute to 100 years, 'off' (keep for ever) or "
                              "'default' (remove the override)",
               "oneOf": [{"type": "number", "minimum": MIN_KEEP_SECONDS,
                          "maximum": MAX_KEEP_SECONDS},
                         {"type": "string", "pattern": "^(off|default|[1-9][0-9]{0,2}[mhdw])$"}]}


def _get_retention() -> dict[str, Any]:
    return {
        "summary": "How long a queue keeps its finished jobs, by final state, and whether "
                   "each value is the queue's override or the workers' default",
        "operationId": "getQueueRetention", "parameters": [_queue_param()],
        "responses": {"200": _ok(_RETENTION), **_errors(400)}}


def _set_retention() -> dict[str, Any]:
    return {
        "summary": "Change a queue's retention: the states given change, the others stay; "
                   "'default' resets a state. A bad value changes nothing (400). The "
                   "leader's next prune applies it",
        "operationId": "setQueueRetention", "parameters": [_queue_param()],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {state: _KEEP_INPUT for state in FINAL_STATES}}}}},
        "responses": {"200": _ok(_RETENTION), **_errors(400, 403, 415)}}


def _bulk() -> dict[str, Any]:
    return {
        "summary": "Retry, cancel or delete many jobs: given ids, or every job matching a "
                   "filter (the query arguments of GET /api/jobs, such as every job "
                   "tagged X: {\"tag\": \"X\"}), in batches of 500, at most 100,000 per "
                   "call",
        "operationId": "bulkJobs",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["action"], "additionalProperties": False,
            "oneOf": [{"required": ["ids"]}, {"required": ["filter"]}],
            "properties": {
                "action": {"type": "string", "enum": ["retry", "cancel", "delete"]},
                "ids": {"type": "array", "maxItems": 1000,
                        "items": {"type": "integer", "minimum": 1, "maximum": _MAX_ID}},
                "filter": {"type": "object", "additionalProperties": False, "properties": {
                    "queue": _QUEUE, "state": _KIND, "task": _TASK, "id": _DIGITS,
                    "batch": _DIGITS, "error": _SEARCH_TEXT, "unique_key": _SEARCH_TEXT,
                    "tag": {"oneOf": [_TAG, {"type": "array", "items": _TAG,
                                             "maxItems": 100}]},
                    "tag_mode": _TAG_MODE}},
            }}}}},
        "responses": {"200": _ok({"type": "object",
                                  "required": ["action", "selected", "changed", "more"]}),
                      **_errors(400, 403, 404, 415)}}


def _charts() -> dict[str, Any]:
    return {
        "summary": "Finished jobs per queue and time bucket, with run duration percentiles "
                   "(estimated from a histogram), and queue depth and lag from the leader's "
                   "samples",
        "operationId": "getCharts",
        "parameters": [{"name": "range", "in": "query",
                        "schema": {"type": "string", "enum": ["hour", "day", "week"]}},
                       {"name": "queue", "in": "query", "schema": _QUEUE}],
        "responses": {"200": _ok({"type": "object", "required": ["range", "points"]}),
                      **_errors(400)}}

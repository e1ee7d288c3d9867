-- job_complete_many: write the outcomes of many attempts in one statement.
-- FENCED: an outcome applies only while its job is still `running` under this
-- worker and the claim that started this attempt (claim_token, migration 0011:
-- never repeats, so neither a fixed worker_id reused after a restart nor an
-- attempt number given back or reset by a retry by hand can match a later
-- attempt). A stale worker whose job was reclaimed (and maybe claimed again)
-- changes nothing; its ids are missing from the result.
-- Final outcomes (succeeded, failed, cancelled) move the row to
-- pgqueue.finished_jobs (the row built by pgqueue.finished_row, migration 0012);
-- `retried` puts it back to `queued` at statement_timestamp() + delay, and its
-- error's `at` is the same statement_timestamp(): inside a longer transaction
-- (pgqueue.testing.drain) the retry is still due `delay` after this statement.
-- `snoozed` does the same without using the attempt: the attempt the claim
-- counted is given back, `snoozes` grows by one, and no error is recorded;
-- unless the job has snoozed `max_snoozes` times already: then it fails for
-- good (kind `snoozed`), its reason built here, where the count is.
-- An error given with `succeeded` is a note (a result stored rewritten): it
-- joins `errors` but leaves last_error alone.
-- What the attempt reported and the worker had not written yet comes along:
-- `progress` replaces the job's, `meta` (every key the attempt set) is merged
-- into it (jsonb ||), live and in the history row alike.
-- Parameters, arrays of equal length: ids, tokens (claim tokens), outcomes
--   (text), delays (seconds, for retried and snoozed), errors (jsonb or NULL),
--   results (jsonb or NULL), max_snoozes (int, for snoozed), progress (jsonb or
--   NULL), meta (jsonb or NULL); and worker_id.
-- Returns: the ids whose outcome was applied, each with `follow_up`: true when
--   the job finished and has dependents or a batch (the worker then runs
--   job_after_finish once this statement has committed); and, for a snooze past
--   its cap, `failed` and the reason (else NULL, NULL: the outcome as given).
-- Notifies: pgqueue_finished with the finished ids (comma-separated; '*' when
--   too long for a payload), only while a result waiter is registered in
--   pgqueue.result_waiters (migration 0022); pgqueue_jobs for the queues
--   where a concurrency limit or key cap may have freed a slot.
WITH outcome AS (
    SELECT *
    FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(outcomes)s::text[],
                %(delays)s::float8[], %(errors)s::jsonb[], %(results)s::jsonb[],
                %(max_snoozes)s::int[], %(progress)s::jsonb[], %(meta)s::jsonb[])
         AS o(id, token, outcome, delay_seconds, error, result, max_snoozes, progress, meta)
),
finished AS (
    DELETE FROM pgqueue.jobs j
    USING outcome o
    -- The fence is written so that jobs_running_idx cannot serve it: the
    -- planner's estimate of running jobs is often stale (ANALYZE saw them
    -- queued), and a nested loop over that index with the outcomes inside grows
    -- with running jobs × batch. Each outcome finds its row by primary key.
    WHERE j.id = o.id AND j.claim_token = o.token
      AND j.worker_id = %(worker_id)s AND (j.state = 'running') IS TRUE
      AND (o.outcome IN ('succeeded', 'failed', 'cancelled')
           OR (o.outcome = 'snoozed' AND j.snoozes >= o.max_snoozes))
    RETURNING j AS job, j.id, j.queue, j.concurrency_key, j.has_dependents, j.batch_id,
              o.outcome = 'snoozed' AS capped,
              CASE WHEN o.outcome = 'snoozed' THEN 'failed' ELSE o.outcome END AS outcome,
              CASE WHEN o.outcome = 'snoozed'
                   THEN jsonb_build_object(
                       'kind', 'snoozed', 'attempt', j.attempt,
                       'message', format('snoozed again after %%s snoozes, the most '
                                         'max_snoozes (%%s) allows; failed',
                                         j.snoozes, o.max_snoozes))
                   ELSE o.error END AS error,
              o.result, o.progress, o.meta
),
archived AS (
    INSERT INTO pgqueue.finished_jobs
    SELECT (pgqueue.finished_row(
               x.job, x.outcome::pgqueue.job_state,
               CASE WHEN x.outcome = 'succeeded' THEN (x.job).last_error
                    ELSE COALESCE(x.error ->> 'message', (x.job).last_error) END,
               CASE WHEN x.error IS NULL THEN (x.job).errors
                    ELSE pgqueue.append_error((x.job).errors,
                                              x.error || jsonb_build_object('at', now())) END,
               x.result)).*
    FROM (
        SELECT f.job, f.outcome, f.error, f.result
        FROM finished f
        WHERE f.progress IS NULL AND f.meta IS NULL
        UNION ALL
        -- With the reports not written yet, into the job's row before its history
        -- row is built: once per job (OFFSET 0 keeps the subquery from being
        -- inlined into each field finished_row reads, 30 calls instead of one).
        SELECT r.job, f.outcome, f.error, f.result
        FROM finished f
        CROSS JOIN LATERAL (
            SELECT jsonb_populate_record(
                       f.job,
                       CASE WHEN f.progress IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('progress', f.progress) END
                       || CASE WHEN f.meta IS NULL THEN '{}'::jsonb
                               ELSE jsonb_build_object('meta', (f.job).meta || f.meta) END)
                   AS job
            OFFSET 0) r
        WHERE f.progress IS NOT NULL OR f.meta IS NOT NULL
    ) x
    RETURNING id
),
retried AS (
    UPDATE pgqueue.jobs j
    SET state = 'queued',
        run_at = statement_timestamp() + o.delay_seconds * interval '1 second',
        worker_id = NULL,
        heartbeat_at = NULL,
        attempt = CASE WHEN o.outcome = 'snoozed' THEN j.attempt - 1 ELSE j.attempt END,
        snoozes = CASE WHEN o.outcome = 'snoozed' THEN j.snoozes + 1 ELSE j.snoozes END,
        last_error = CASE WHEN o.outcome = 'snoozed' THEN j.last_error
                          ELSE o.error ->> 'message' END,
        errors = CASE WHEN o.outcome = 'snoozed' THEN j.errors
                      ELSE pgqueue.append_error(j.errors, o.error || jsonb_build_object(
                               'at', statement_timestamp())) END,
        progress = COALESCE(o.progress, j.progress),
        meta = CASE WHEN o.meta IS NULL THEN j.meta ELSE j.meta || o.meta END
    FROM outcome o
    WHERE j.id = o.id AND j.claim_token = o.token
      AND j.worker_id = %(worker_id)s AND (j.state = 'running') IS TRUE
      AND (o.outcome = 'retried' OR (o.outcome = 'snoozed' AND j.snoozes < o.max_snoozes))
    RETURNING j.id, j.queue, j.concurrency_key
),
freed AS (
    SELECT pg_notify('pgqueue_jobs', q)
    FROM (
        SELECT DISTINCT x.queue::text
        FROM (SELECT f.queue, f.concurrency_key FROM finished f
              UNION ALL
              SELECT r.queue, r.concurrency_key FROM retried r) x
        LEFT JOIN pgqueue.queues pq ON pq.name = x.queue
        WHERE pq.concurrency_limit IS NOT NULL OR x.concurrency_key IS NOT NULL
    ) AS s(q)
),
announced AS (
    SELECT pg_notify('pgqueue_finished',
                     CASE WHEN length(s.ids) <= 7900 THEN s.ids ELSE '*' END)
    FROM (SELECT string_agg(a.id::text, ',') FROM archived a) AS s(ids)
    WHERE s.ids IS NOT NULL AND EXISTS (SELECT FROM pgqueue.result_waiters)
)
-- A SELECT in WITH runs only if referenced: the always-true counts make the
-- notifications happen.
SELECT f.id, (f.has_dependents IS TRUE OR f.batch_id IS NOT NULL) AS follow_up,
       CASE WHEN f.capped THEN 'failed' END AS outcome,
       CASE WHEN f.capped THEN f.error ->> 'message' END AS error
FROM finished f
WHERE (SELECT count(*) FROM freed) >= 0 AND (SELECT count(*) FROM announced) >= 0
UNION ALL
SELECT r.id, false, NULL, NULL FROM retried r

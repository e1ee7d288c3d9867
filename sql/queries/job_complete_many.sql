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
-- An error given with `succeeded` is a note (a result stored rewritten): it
-- joins `errors` but leaves last_error alone.
-- Parameters, arrays of equal length: ids, tokens (claim tokens), outcomes
--   (text), delays (seconds, for retried), errors (jsonb or NULL), results
--   (jsonb or NULL); and worker_id.
-- Returns: the ids whose outcome was applied, each with `follow_up`: true when
--   the job finished and has dependents or a batch (the worker then runs
--   job_after_finish once this statement has committed).
-- Notifies: pgqueue_finished with the finished ids (comma-separated; '*' when
--   too long for a payload), for result waiters; pgqueue_jobs for the queues
--   where a concurrency limit or key cap may have freed a slot.
WITH outcome AS (
    SELECT *
    FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(outcomes)s::text[],
                %(delays)s::float8[], %(errors)s::jsonb[], %(results)s::jsonb[])
         AS o(id, token, outcome, delay_seconds, error, result)
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
      AND o.outcome IN ('succeeded', 'failed', 'cancelled')
    RETURNING j AS job, j.id, j.queue, j.concurrency_key, j.has_dependents, j.batch_id,
              o.outcome, o.error, o.result
),
archived AS (
    INSERT INTO pgqueue.finished_jobs
    SELECT (pgqueue.finished_row(
               f.job, f.outcome::pgqueue.job_state,
               CASE WHEN f.outcome = 'succeeded' THEN (f.job).last_error
                    ELSE COALESCE(f.error ->> 'message', (f.job).last_error) END,
               CASE WHEN f.error IS NULL THEN (f.job).errors
                    ELSE pgqueue.append_error((f.job).errors,
                                              f.error || jsonb_build_object('at', now())) END,
               f.result)).*
    FROM finished f
    RETURNING id
),
retried AS (
    UPDATE pgqueue.jobs j
    SET state = 'queued',
        run_at = statement_timestamp() + o.delay_seconds * interval '1 second',
        worker_id = NULL,
        heartbeat_at = NULL,
        last_error = o.error ->> 'message',
        errors = pgqueue.append_error(j.errors, o.error || jsonb_build_object('at', statement_timestamp()))
    FROM outcome o
    WHERE j.id = o.id AND j.claim_token = o.token
      AND j.worker_id = %(worker_id)s AND (j.state = 'running') IS TRUE
      AND o.outcome = 'retried'
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
    WHERE s.ids IS NOT NULL
)
-- A SELECT in WITH runs only if referenced: the always-true counts make the
-- notifications happen.
SELECT f.id, (f.has_dependents IS TRUE OR f.batch_id IS NOT NULL) AS follow_up
FROM finished f
WHERE (SELECT count(*) FROM freed) >= 0 AND (SELECT count(*) FROM announced) >= 0
UNION ALL
SELECT r.id, false FROM retried r

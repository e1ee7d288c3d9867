-- 0003_controls: pausing queues, cancellation, expiry, periodic schedules.

-- Pausing: a paused queue is skipped by every claim (job_claim.sql), so it takes
-- effect at the next claim of every worker, notification or not.
ALTER TABLE pgqueue.queues
    ADD COLUMN paused boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_at timestamptz;

-- Expired jobs are found by the leader through this small partial index.
CREATE INDEX jobs_expires_at_idx ON pgqueue.jobs (expires_at)
    WHERE expires_at IS NOT NULL AND state = 'queued';

-- Control messages to workers: channel pgqueue_control, payload 'cancel:<job id>',
-- 'pause:<queue>' or 'resume:<queue>'. Delivered at commit.

-- Pause a queue (created if unknown). Returns true if it was not paused before.
CREATE FUNCTION pgqueue.pause_queue(queue text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    was_paused boolean;
BEGIN
    SELECT q.paused INTO was_paused FROM pgqueue.queues q
    WHERE q.name = pause_queue.queue FOR UPDATE;
    INSERT INTO pgqueue.queues AS q (name, paused, paused_at)
    VALUES (pause_queue.queue, true, now())
    ON CONFLICT (name) DO UPDATE SET paused = true, paused_at = COALESCE(q.paused_at, now());
    PERFORM pg_notify('pgqueue_control', 'pause:' || pause_queue.queue);
    RETURN NOT COALESCE(was_paused, false);
END
$$;

-- Resume a paused queue and wake its workers. Returns true if it was paused.
CREATE FUNCTION pgqueue.resume_queue(queue text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    was_paused boolean;
BEGIN
    UPDATE pgqueue.queues q SET paused = false, paused_at = NULL
    WHERE q.name = resume_queue.queue AND q.paused
    RETURNING true INTO was_paused;
    PERFORM pg_notify('pgqueue_control', 'resume:' || resume_queue.queue);
    PERFORM pg_notify('pgqueue_jobs', resume_queue.queue);
    RETURN COALESCE(was_paused, false);
END
$$;

-- Cancel a job. Returns what happened:
--   'cancelled'   it was queued: it is now in history as cancelled, at once;
--   'requested'   it is running: its worker is asked to stop it (NOTIFY, and the
--                 worker's next heartbeat); it ends 'cancelled', never retried;
--   'finished'    it had already finished: nothing changes;
--   'not_found'   no such job.
CREATE FUNCTION pgqueue.cancel(job_id bigint, reason text DEFAULT 'cancelled by request')
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    current pgqueue.job_state;
BEGIN
    SELECT j.state INTO current FROM pgqueue.jobs j WHERE j.id = cancel.job_id FOR UPDATE;
    IF current = 'queued' THEN
        WITH gone AS (
            DELETE FROM pgqueue.jobs j WHERE j.id = cancel.job_id RETURNING j.*
        )
        INSERT INTO pgqueue.finished_jobs
            (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
             started_at, finished_at, worker_id, unique_key, last_error, errors, trace_context,
             timeout_seconds, expires_at, cancel_requested_at, depends_on, batch_id,
             concurrency_key)
        SELECT g.id, g.queue, g.task, g.args, g.priority, 'cancelled', g.attempt,
               g.max_attempts, g.run_at, g.created_at, g.started_at, now(), g.worker_id,
               g.unique_key, cancel.reason, g.errors, g.trace_context, g.timeout_seconds,
               g.expires_at, now(), g.depends_on, g.batch_id, g.concurrency_key
        FROM gone g;
        RETURN 'cancelled';
    ELSIF current = 'running' THEN
        UPDATE pgqueue.jobs j SET cancel_requested_at = COALESCE(j.cancel_requested_at, now())
        WHERE j.id = cancel.job_id;
        PERFORM pg_notify('pgqueue_control', 'cancel:' || cancel.job_id);
        RETURN 'requested';
    ELSIF EXISTS (SELECT 1 FROM pgqueue.finished_jobs h WHERE h.id = cancel.job_id) THEN
        RETURN 'finished';
    END IF;
    RETURN 'not_found';
END
$$;

-- Periodic schedules, written by the leader from the registry it runs. last_tick
-- is the schedule time of the newest tick enqueued (or skipped): advancing it and
-- enqueueing that tick's job happen in one transaction, so each tick enqueues at
-- most once, even across a leader change.
CREATE TABLE pgqueue.periodic (
    name        text PRIMARY KEY,
    cron        text NOT NULL,
    task        pgqueue.task_name NOT NULL,
    queue       pgqueue.queue_name NOT NULL,
    args        jsonb NOT NULL DEFAULT '{}'::jsonb,
    on_missed   text NOT NULL DEFAULT 'skip' CHECK (on_missed IN ('skip', 'run_once')),
    last_tick   timestamptz,
    last_job_id bigint,
    next_tick   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Fire one tick of a periodic schedule, at most once: advances last_tick and
-- (when fire is true) enqueues the tick's job in the same transaction. Returns
-- the job id, or NULL when the tick was already handled or is skipped.
CREATE FUNCTION pgqueue.periodic_fire(name text, tick timestamptz, next_tick timestamptz,
                                      fire boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    schedule pgqueue.periodic;
    job_id bigint;
BEGIN
    SELECT * INTO schedule FROM pgqueue.periodic p
    WHERE p.name = periodic_fire.name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF schedule.last_tick IS NOT NULL AND schedule.last_tick >= periodic_fire.tick THEN
        UPDATE pgqueue.periodic p SET next_tick = periodic_fire.next_tick
        WHERE p.name = periodic_fire.name;
        RETURN NULL;
    END IF;
    IF fire THEN
        job_id := pgqueue.enqueue(
            task => schedule.task, args => schedule.args, queue => schedule.queue,
            unique_key => 'periodic:' || schedule.name || ':'
                          || to_char(periodic_fire.tick AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS'));
    END IF;
    UPDATE pgqueue.periodic p
    SET last_tick = periodic_fire.tick, next_tick = periodic_fire.next_tick,
        last_job_id = COALESCE(job_id, p.last_job_id), updated_at = now()
    WHERE p.name = periodic_fire.name;
    RETURN job_id;
END
$$;

-- The SQL enqueue, with expiry: a job not started by expires_at never starts and
-- ends 'cancelled' with the reason 'expired'.
DROP FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer, text,
                              double precision, text);
CREATE FUNCTION pgqueue.enqueue(
    task          text,
    args          jsonb DEFAULT '{}'::jsonb,
    queue         text DEFAULT 'default',
    priority      integer DEFAULT 0,
    run_at        timestamptz DEFAULT NULL,
    max_attempts  integer DEFAULT NULL,
    unique_key    text DEFAULT NULL,
    delay_seconds double precision DEFAULT NULL,
    trace_context text DEFAULT NULL,
    expires_at    timestamptz DEFAULT NULL,
    ttl_seconds   double precision DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    IF enqueue.run_at IS NOT NULL AND enqueue.delay_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give run_at or delay_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.expires_at IS NOT NULL AND enqueue.ttl_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give expires_at or ttl_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.delay_seconds < 0 OR enqueue.ttl_seconds <= 0 THEN
        RAISE EXCEPTION 'pgqueue.enqueue: delay_seconds must be >= 0 and ttl_seconds > 0'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1..5 LOOP
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, unique_key, trace_context,
             expires_at)
        VALUES (
            COALESCE(enqueue.queue, 'default'), enqueue.task, COALESCE(enqueue.args, '{}'::jsonb),
            COALESCE(enqueue.priority, 0),
            COALESCE(enqueue.run_at, now() + COALESCE(enqueue.delay_seconds, 0) * interval '1 second'),
            COALESCE(enqueue.max_attempts, 5), enqueue.unique_key, enqueue.trace_context,
            COALESCE(enqueue.expires_at, now() + enqueue.ttl_seconds * interval '1 second'))
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM pgqueue.jobs j WHERE j.unique_key = enqueue.unique_key;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique_key % kept changing hands', enqueue.unique_key
        USING ERRCODE = 'serialization_failure';
END
$$;

-- queue_stats gains `paused`.
DROP VIEW pgqueue.queue_stats;
DROP FUNCTION pgqueue.queue_stats_rows();
CREATE FUNCTION pgqueue.queue_stats_rows()
RETURNS TABLE (queue text, ready bigint, scheduled bigint, running bigint, failed bigint,
               succeeded_1h bigint, lag_seconds numeric, unclaimable bigint, paused boolean)
LANGUAGE sql STABLE SET jit = off AS $$
SELECT
    q.name::text AS queue,
    COALESCE(l.ready, 0)::bigint AS ready,
    COALESCE(l.scheduled, 0)::bigint AS scheduled,
    r.running,
    f.failed,
    s.succeeded_1h,
    round(COALESCE(extract(epoch FROM now() - l.oldest_ready), 0)::numeric, 3) AS lag_seconds,
    COALESCE(l.unclaimable, 0)::bigint AS unclaimable,
    q.paused
FROM pgqueue.queues q
LEFT JOIN LATERAL (
    SELECT
        sum(t.n) FILTER (WHERE t.due) AS ready,
        sum(t.n) FILTER (WHERE NOT t.due) AS scheduled,
        min(t.oldest) FILTER (WHERE t.due) AS oldest_ready,
        sum(t.n) FILTER (WHERE t.due AND NOT EXISTS (
            SELECT 1 FROM pgqueue.workers w
            WHERE q.name = ANY (w.queues) AND t.task = ANY (w.tasks))) AS unclaimable
    FROM (
        SELECT j.task, j.run_at <= now() AS due, count(*) AS n, min(j.run_at) AS oldest
        FROM pgqueue.jobs j
        WHERE j.queue = q.name AND j.state = 'queued'
        GROUP BY 1, 2
    ) t
) l ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM pgqueue.jobs j
    WHERE j.queue = q.name AND j.state = 'running'
) r
CROSS JOIN LATERAL (
    SELECT count(*) AS failed FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'failed'
) f
CROSS JOIN LATERAL (
    SELECT count(*) AS succeeded_1h FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'succeeded'
      AND h.finished_at > now() - interval '1 hour'
) s;
$$;

CREATE VIEW pgqueue.queue_stats AS
SELECT * FROM pgqueue.queue_stats_rows();

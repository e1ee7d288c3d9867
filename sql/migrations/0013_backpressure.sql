-- 0013_backpressure: bounded queues. A queue may have a depth limit
-- (queues.max_depth): an enqueue that would take the queue's live jobs past it
-- is refused before anything is inserted; and a soft threshold
-- (queues.warn_depth) that refuses nothing and is only reported.
--
-- The depth is the queue's live jobs: queued (ready, scheduled, blocked) and
-- running, counted through the partial indexes the live table already has
-- (jobs_claim_idx, jobs_running_idx, jobs_blocked_idx) and never past the
-- larger of the two thresholds, so a check reads at most that many index
-- entries and a queue without either threshold counts nothing. No counter is
-- kept: a counter row would make every producer of the queue wait for the
-- others' commits, and no lock is taken, so an enqueue never waits for room
-- inside the caller's transaction. The price is a bound rather than
-- exactness: a check sees the jobs committed before it and its own
-- transaction's, so the depth can pass max_depth by at most the jobs that
-- other transactions had enqueued into the queue, uncommitted, when it ran
-- (README, "Bounded queues").
--
-- - pgqueue.try_enqueue: what pgqueue's Python producer calls for one job: the
--   check, then the insert; a full queue inserts nothing and returns no id,
--   with the limit and the depth, so the caller's transaction stays usable.
-- - pgqueue.queue_rooms: the same check for the queues of a bulk insert
--   (enqueue_many), run before its COPY or unnest insert.
-- - pgqueue.enqueue (the SQL function) checks too and raises SQLSTATE 53Q01
--   (class 53, insufficient resources) naming the queue, its limit and depth.
-- - pgqueue.insert_job: the insert enqueue did until now, unchecked. Periodic
--   ticks and batch callbacks (pgqueue.periodic_fire, pgqueue.settle_batches)
--   use it: what the system enqueues on its own is never refused, and neither
--   are retries, snoozes, hand-backs, reclaims or retries by hand, which move
--   jobs already counted or restore them from history without this check.
-- - pgqueue.set_max_depth, pgqueue.set_warn_depth set or (NULL) remove them.
-- - queue_stats gains depth, max_depth and warn_depth.

ALTER TABLE pgqueue.queues
    ADD COLUMN max_depth integer CONSTRAINT queues_max_depth_range CHECK (max_depth >= 1),
    ADD COLUMN warn_depth integer CONSTRAINT queues_warn_depth_range CHECK (warn_depth >= 1);

-- Every role may read a queue's bounds (as a producer reads its name): the check
-- of one job then looks them up itself, without a SECURITY DEFINER call, whose
-- SET search_path costs more than the look-up. They are settings, not data.
GRANT SELECT (name, max_depth, warn_depth) ON pgqueue.queues TO PUBLIC;

-- A producer role still adds a queue by name only, without settings.
CREATE OR REPLACE FUNCTION pgqueue.queues_before_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.paused OR NEW.paused_at IS NOT NULL OR NEW.concurrency_limit IS NOT NULL
            OR NEW.rate_limit IS NOT NULL OR NEW.rate_period IS NOT NULL
            OR NEW.max_depth IS NOT NULL OR NEW.warn_depth IS NOT NULL
            OR NEW.created_at <> now())
            AND NOT has_table_privilege('pgqueue.queues', 'UPDATE') THEN
        RAISE EXCEPTION 'pgqueue: role % may only add a queue by name, without settings',
            current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

-- The live jobs of a queue, counted up to bound (NULL: all of them). Three
-- bounded index scans, one per partial index; running jobs are few (they hold
-- worker slots), blocked ones usually too. SECURITY DEFINER: a producer role
-- may not read pgqueue.jobs beyond ids and unique keys, and learns only a count.
CREATE FUNCTION pgqueue.queue_depth(queue text, bound bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT count(*) FROM (
                SELECT FROM pgqueue.jobs j
                WHERE j.queue::text = queue_depth.queue AND j.state = 'queued'
                  AND j.blocked IS NULL
                LIMIT queue_depth.bound) a)
         + (SELECT count(*) FROM (
                SELECT FROM pgqueue.jobs j
                WHERE j.state = 'running' AND j.queue::text = queue_depth.queue
                LIMIT queue_depth.bound) r)
         + (SELECT count(*) FROM (
                SELECT FROM pgqueue.jobs j
                WHERE j.blocked AND j.queue::text = queue_depth.queue
                LIMIT queue_depth.bound) b);
END
$$;

-- For each of queues that has a max_depth or a warn_depth: both, and its depth
-- counted up to the larger (exact below it). Queues without either are left
-- out, and cost one index look-up. SECURITY DEFINER, as queue_depth. Used once
-- per bulk insert; try_enqueue reads the bounds of its one queue itself.
CREATE FUNCTION pgqueue.queue_rooms(queues text[])
RETURNS TABLE (queue text, max_depth integer, warn_depth integer, depth bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT q.name::text, q.max_depth, q.warn_depth,
           pgqueue.queue_depth(q.name, GREATEST(q.max_depth, q.warn_depth))
    FROM pgqueue.queues q
    WHERE q.name::text = ANY (queue_rooms.queues)
      AND (q.max_depth IS NOT NULL OR q.warn_depth IS NOT NULL)
    ORDER BY q.name;
END
$$;

-- The insert pgqueue.enqueue did before this migration, unchecked.
CREATE FUNCTION pgqueue.insert_job(task text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
                                   priority integer DEFAULT 0, run_at timestamptz DEFAULT NULL,
                                   max_attempts integer DEFAULT NULL, unique_key text DEFAULT NULL,
                                   delay_seconds double precision DEFAULT NULL,
                                   trace_context text DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
                                   ttl_seconds double precision DEFAULT NULL,
                                   depends_on bigint[] DEFAULT NULL, concurrency_key text DEFAULT NULL,
                                   batch_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
    deps bigint[];
BEGIN
    IF insert_job.run_at IS NOT NULL AND insert_job.delay_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give run_at or delay_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF insert_job.expires_at IS NOT NULL AND insert_job.ttl_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give expires_at or ttl_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF insert_job.delay_seconds < 0 OR insert_job.ttl_seconds <= 0 THEN
        RAISE EXCEPTION 'pgqueue.enqueue: delay_seconds must be >= 0 and ttl_seconds > 0'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF insert_job.batch_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pgqueue.job_batches b
            WHERE b.id = insert_job.batch_id AND b.sealed_at IS NULL) THEN
        RAISE EXCEPTION 'pgqueue.enqueue: batch % does not exist or is sealed', insert_job.batch_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    deps := ARRAY(SELECT DISTINCT d FROM unnest(insert_job.depends_on) AS d ORDER BY d);
    IF array_position(deps, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: depends_on holds NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(deps) = 0 THEN
        deps := NULL;
    END IF;
    FOR i IN 1..5 LOOP
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, unique_key, trace_context,
             expires_at, depends_on, blocked, concurrency_key, batch_id)
        VALUES (
            COALESCE(insert_job.queue, 'default'), insert_job.task, COALESCE(insert_job.args, '{}'::jsonb),
            COALESCE(insert_job.priority, 0),
            COALESCE(insert_job.run_at, now() + COALESCE(insert_job.delay_seconds, 0) * interval '1 second'),
            COALESCE(insert_job.max_attempts, 5), insert_job.unique_key, insert_job.trace_context,
            COALESCE(insert_job.expires_at, now() + insert_job.ttl_seconds * interval '1 second'),
            deps, CASE WHEN deps IS NOT NULL THEN true END, insert_job.concurrency_key,
            insert_job.batch_id)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            IF deps IS NOT NULL THEN
                PERFORM pgqueue.link_dependencies(ARRAY[new_id]);
            END IF;
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM pgqueue.jobs j WHERE j.unique_key = insert_job.unique_key;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique_key % kept changing hands', insert_job.unique_key
        USING ERRCODE = 'serialization_failure';
END
$$;
-- One job, checked: (NULL, max_depth, warn_depth, depth) when the queue is
-- full, nothing inserted; else the new id (or the holder's of a taken
-- unique_key) with the queue's thresholds and its depth before the insert
-- (NULL when it has neither). A full queue refuses even a job whose unique_key
-- a live job holds. A job with no unique key, dependency or batch whose times
-- are consistent is inserted here (the plan is cached for the session);
-- anything else goes through insert_job, which checks and raises.
CREATE FUNCTION pgqueue.try_enqueue(task text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
                                    priority integer DEFAULT 0, run_at timestamptz DEFAULT NULL,
                                    max_attempts integer DEFAULT NULL, unique_key text DEFAULT NULL,
                                    delay_seconds double precision DEFAULT NULL,
                                    trace_context text DEFAULT NULL,
                                    expires_at timestamptz DEFAULT NULL,
                                    ttl_seconds double precision DEFAULT NULL,
                                    depends_on bigint[] DEFAULT NULL,
                                    concurrency_key text DEFAULT NULL,
                                    batch_id bigint DEFAULT NULL,
                                    OUT id bigint, OUT max_depth integer,
                                    OUT warn_depth integer, OUT depth bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- One primary-key look-up; a queue without bounds counts nothing.
    SELECT q.max_depth, q.warn_depth INTO max_depth, warn_depth
    FROM pgqueue.queues q WHERE q.name = COALESCE(try_enqueue.queue, 'default');
    IF max_depth IS NOT NULL OR warn_depth IS NOT NULL THEN
        depth := pgqueue.queue_depth(COALESCE(try_enqueue.queue, 'default'),
                                     GREATEST(max_depth, warn_depth));
        IF depth >= max_depth THEN
            RETURN;
        END IF;
    END IF;
    IF try_enqueue.unique_key IS NULL AND try_enqueue.depends_on IS NULL
            AND try_enqueue.batch_id IS NULL
            AND (try_enqueue.run_at IS NULL OR try_enqueue.delay_seconds IS NULL)
            AND (try_enqueue.expires_at IS NULL OR try_enqueue.ttl_seconds IS NULL)
            AND COALESCE(try_enqueue.delay_seconds, 0) >= 0
            AND COALESCE(try_enqueue.ttl_seconds, 1) > 0 THEN
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, trace_context, expires_at,
             concurrency_key)
        VALUES (
            COALESCE(try_enqueue.queue, 'default'), try_enqueue.task,
            COALESCE(try_enqueue.args, '{}'::jsonb), COALESCE(try_enqueue.priority, 0),
            COALESCE(try_enqueue.run_at,
                     now() + COALESCE(try_enqueue.delay_seconds, 0) * interval '1 second'),
            COALESCE(try_enqueue.max_attempts, 5), try_enqueue.trace_context,
            COALESCE(try_enqueue.expires_at, now() + try_enqueue.ttl_seconds * interval '1 second'),
            try_enqueue.concurrency_key)
        RETURNING j.id INTO id;
    ELSE
        id := pgqueue.insert_job(
            task => try_enqueue.task, args => try_enqueue.args, queue => try_enqueue.queue,
            priority => try_enqueue.priority, run_at => try_enqueue.run_at,
            max_attempts => try_enqueue.max_attempts, unique_key => try_enqueue.unique_key,
            delay_seconds => try_enqueue.delay_seconds,
            trace_context => try_enqueue.trace_context, expires_at => try_enqueue.expires_at,
            ttl_seconds => try_enqueue.ttl_seconds, depends_on => try_enqueue.depends_on,
            concurrency_key => try_enqueue.concurrency_key, batch_id => try_enqueue.batch_id);
    END IF;
END
$$;

-- The SQL function for applications and people: try_enqueue, raising when the
-- queue is full (SQLSTATE 53Q01; DETAIL reads "queue=... max_depth=... depth=...").
CREATE OR REPLACE FUNCTION pgqueue.enqueue(task text, args jsonb DEFAULT '{}',
                                           queue text DEFAULT 'default',
                                           priority integer DEFAULT 0,
                                           run_at timestamptz DEFAULT NULL,
                                           max_attempts integer DEFAULT NULL,
                                           unique_key text DEFAULT NULL,
                                           delay_seconds double precision DEFAULT NULL,
                                           trace_context text DEFAULT NULL,
                                           expires_at timestamptz DEFAULT NULL,
                                           ttl_seconds double precision DEFAULT NULL,
                                           depends_on bigint[] DEFAULT NULL,
                                           concurrency_key text DEFAULT NULL,
                                           batch_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM pgqueue.try_enqueue(
        task => enqueue.task, args => enqueue.args, queue => enqueue.queue,
        priority => enqueue.priority, run_at => enqueue.run_at,
        max_attempts => enqueue.max_attempts, unique_key => enqueue.unique_key,
        delay_seconds => enqueue.delay_seconds, trace_context => enqueue.trace_context,
        expires_at => enqueue.expires_at, ttl_seconds => enqueue.ttl_seconds,
        depends_on => enqueue.depends_on, concurrency_key => enqueue.concurrency_key,
        batch_id => enqueue.batch_id);
    IF r.id IS NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: queue % is full: % live jobs, max_depth %',
            COALESCE(enqueue.queue, 'default'), r.depth, r.max_depth
            USING ERRCODE = '53Q01',
                  DETAIL = format('queue=%s max_depth=%s depth=%s',
                                  COALESCE(enqueue.queue, 'default'), r.max_depth, r.depth),
                  HINT = 'Retry later, once workers have drained the queue, or raise its '
                         'limit with pgqueue.set_max_depth.';
    END IF;
    RETURN r.id;
END
$$;

-- Periodic ticks and batch callbacks: inserted unchecked (never refused).
CREATE OR REPLACE FUNCTION pgqueue.periodic_fire(name text, tick timestamptz, next_tick timestamptz,
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
        job_id := pgqueue.insert_job(
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
CREATE OR REPLACE FUNCTION pgqueue.settle_batches(batch_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    b pgqueue.job_batches;
    bid bigint;
    callback_id bigint;
BEGIN
    FOREACH bid IN ARRAY ARRAY(SELECT DISTINCT x FROM unnest(settle_batches.batch_ids) AS x
                               WHERE x IS NOT NULL ORDER BY x) LOOP
        CONTINUE WHEN (SELECT j.id FROM pgqueue.jobs j WHERE j.batch_id = bid
                              ORDER BY j.id DESC LIMIT 1) IS NOT NULL;
        PERFORM 1 FROM pgqueue.job_batches jb
        WHERE jb.id = bid AND jb.finished_at IS NULL
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        SELECT * INTO b FROM pgqueue.job_batches jb WHERE jb.id = bid;
        CONTINUE WHEN b.finished_at IS NOT NULL OR b.sealed_at IS NULL
                   OR (SELECT j.id FROM pgqueue.jobs j WHERE j.batch_id = bid
                              ORDER BY j.id DESC LIMIT 1) IS NOT NULL;
        callback_id := NULL;
        IF b.callback_task IS NOT NULL THEN
            callback_id := pgqueue.insert_job(
                task => b.callback_task,
                args => COALESCE(b.callback_args, '{}'::jsonb)
                        || jsonb_build_object('batch_id', bid),
                queue => COALESCE(b.callback_queue, 'default'));
        END IF;
        UPDATE pgqueue.job_batches jb SET finished_at = now(), callback_job_id = callback_id
        WHERE jb.id = bid;
        PERFORM pg_notify('pgqueue_finished', 'batch:' || bid);
    END LOOP;
END
$$;
CREATE FUNCTION pgqueue.set_max_depth(queue text, max_depth integer)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pgqueue.queues AS q (name, max_depth)
    VALUES (set_max_depth.queue, set_max_depth.max_depth)
    ON CONFLICT (name) DO UPDATE SET max_depth = EXCLUDED.max_depth
$$;

CREATE FUNCTION pgqueue.set_warn_depth(queue text, warn_depth integer)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pgqueue.queues AS q (name, warn_depth)
    VALUES (set_warn_depth.queue, set_warn_depth.warn_depth)
    ON CONFLICT (name) DO UPDATE SET warn_depth = EXCLUDED.warn_depth
$$;

-- queue_stats gains depth (ready + scheduled + blocked + running, exact),
-- max_depth and warn_depth.
DROP VIEW pgqueue.queue_stats;
DROP FUNCTION pgqueue.queue_stats_rows();
CREATE FUNCTION pgqueue.queue_stats_rows()
RETURNS TABLE (queue text, ready bigint, scheduled bigint, running bigint, failed bigint,
               succeeded_1h bigint, lag_seconds numeric, unclaimable bigint, paused boolean,
               blocked bigint, concurrency_limit integer, rate_limit integer,
               rate_period double precision, depth bigint, max_depth integer,
               warn_depth integer)
LANGUAGE sql STABLE SET jit = off AS $$
SELECT
    q.name::text AS queue,
    COALESCE(l.ready, 0)::bigint AS ready,
    COALESCE(l.scheduled, 0)::bigint AS scheduled,
    r.running,
    COALESCE(f.failed, 0)::bigint AS failed,
    s.succeeded_1h,
    round(COALESCE(extract(epoch FROM now() - l.oldest_ready), 0)::numeric, 3) AS lag_seconds,
    COALESCE(l.unclaimable, 0)::bigint AS unclaimable,
    q.paused,
    COALESCE(l.blocked, 0)::bigint AS blocked,
    q.concurrency_limit,
    q.rate_limit,
    q.rate_period,
    (COALESCE(l.ready, 0) + COALESCE(l.scheduled, 0) + COALESCE(l.blocked, 0)
     + r.running)::bigint AS depth,
    q.max_depth,
    q.warn_depth
FROM pgqueue.queues q
LEFT JOIN LATERAL (
    SELECT
        sum(t.n) FILTER (WHERE t.due AND NOT t.blocked) AS ready,
        sum(t.n) FILTER (WHERE NOT t.due AND NOT t.blocked) AS scheduled,
        sum(t.n) FILTER (WHERE t.blocked) AS blocked,
        min(t.oldest) FILTER (WHERE t.due AND NOT t.blocked) AS oldest_ready,
        sum(t.n) FILTER (WHERE t.due AND NOT t.blocked AND NOT EXISTS (
            SELECT 1 FROM pgqueue.workers w
            WHERE q.name = ANY (w.queues) AND t.task = ANY (w.tasks))) AS unclaimable
    FROM (
        SELECT j.task, j.run_at <= now() AS due, j.blocked IS NOT NULL AS blocked,
               count(*) AS n, min(j.run_at) AS oldest
        FROM pgqueue.jobs j
        WHERE j.queue = q.name AND j.state = 'queued'
        GROUP BY 1, 2, 3
    ) t
) l ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM pgqueue.jobs j
    WHERE j.queue = q.name AND j.state = 'running'
) r
CROSS JOIN LATERAL (
    SELECT count(*) AS succeeded_1h FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'succeeded'
      AND h.finished_at > now() - interval '1 hour'
) s
LEFT JOIN (
    SELECT c.queue, sum(c.n) AS failed FROM pgqueue.failed_counts c
    GROUP BY c.queue
) f ON f.queue = q.name;
$$;
CREATE VIEW pgqueue.queue_stats AS
SELECT * FROM pgqueue.queue_stats_rows();

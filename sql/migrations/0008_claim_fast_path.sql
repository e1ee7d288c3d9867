-- 0008_claim_fast_path: cheaper claims and next-due look-ups.
--
-- pgqueue.next_claim_in was a SQL function with a SET clause, so PostgreSQL
-- could not inline it and planned its query afresh on every call: 1-3 ms of a
-- backend's CPU each time an idle worker looked for its next due job, and the
-- claim session was busy meanwhile. It is now plpgsql, whose plans are kept
-- for the session.
--
-- Both functions also use generic plans from the first call: their queries
-- take array parameters whose values never change the best plan (index scans
-- of small sets), yet with custom plans PostgreSQL kept re-planning them on
-- every call. Measured on one session, one job: claim 0.47 -> 0.42 ms,
-- next_claim_in 0.57 -> 0.17 ms. (jit stays off: see 0005.)
--
-- pgqueue.claim: when no per-key cap can apply (the worker runs no task with
-- concurrency_per_key), the candidates are picked and claimed in one statement
-- instead of a SELECT INTO arrays and an UPDATE by id: one executor start and
-- one array round trip fewer per claim. Limits, pauses, expiry, dependencies
-- and the rate-limit log are applied exactly as before.

CREATE OR REPLACE FUNCTION pgqueue.claim(queues text[], slots integer[], tasks text[],
                                         n integer, worker_id uuid, key_tasks text[] DEFAULT '{}',
                                         key_caps integer[] DEFAULT '{}',
                                         async_commit boolean DEFAULT false)
RETURNS TABLE (id bigint, queue text, task text, args jsonb, priority integer,
               attempt integer, max_attempts integer, run_at timestamptz,
               created_at timestamptz, started_at timestamptz,
               timeout_seconds double precision, trace_context text)
-- jit = off: the cached plan cannot know the per-queue LIMIT, so with a large
-- backlog its cost estimate passes the JIT thresholds and every claim spent
-- 0.5-1.3 s compiling a query that runs in 0.5 ms (1,000,000 jobs waiting).
LANGUAGE plpgsql SET jit = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    rooms integer[] := claim.slots;
    rated text[] := '{}';
    limited boolean;
    at timestamptz;
    ids bigint[];
    keys text[];
    caps integer[];
BEGIN
    IF claim.async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM 1 FROM pgqueue.queues q
    WHERE q.name = ANY (claim.queues) AND NOT q.paused
      AND (q.concurrency_limit IS NOT NULL OR q.rate_limit IS NOT NULL)
    ORDER BY q.name
    FOR NO KEY UPDATE;
    limited := FOUND;
    -- After the locks: claims of a limited queue take turns, so their clock
    -- readings (and started_at) are in claim order.
    at := clock_timestamp();
    IF limited THEN
        DELETE FROM pgqueue.queue_starts s
        USING pgqueue.queues q
        WHERE s.queue = q.name AND q.name = ANY (claim.queues) AND q.rate_limit IS NOT NULL
          AND s.started_at <= at - q.rate_period * interval '1 second';
        SELECT array_agg(GREATEST(0, LEAST(
                   u.slot,
                   CASE WHEN q.concurrency_limit IS NULL THEN u.slot
                        ELSE q.concurrency_limit - (
                            SELECT count(*) FROM pgqueue.jobs r
                            WHERE r.state = 'running' AND r.queue = u.name)::integer END,
                   CASE WHEN q.rate_limit IS NULL THEN u.slot
                        ELSE q.rate_limit - (
                            SELECT count(*) FROM pgqueue.queue_starts s
                            WHERE s.queue = u.name)::integer END)) ORDER BY u.ord),
               COALESCE(array_agg(u.name) FILTER (WHERE q.rate_limit IS NOT NULL), '{}')
        INTO rooms, rated
        FROM unnest(claim.queues, claim.slots) WITH ORDINALITY AS u(name, slot, ord)
        LEFT JOIN pgqueue.queues q ON q.name = u.name;
    END IF;

    IF cardinality(claim.key_tasks) = 0 THEN
        -- No capped key can apply: pick and claim in one statement. (The
        -- candidate query is the one below, word for word; its key-cap filter
        -- is a no-op here.)
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id, c.priority, c.run_at, c.concurrency_key, c.cap
            FROM unnest(claim.queues, rooms) AS u(name, room)
            LEFT JOIN pgqueue.queues pq ON pq.name = u.name
            CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at, j.concurrency_key,
                       CASE WHEN j.concurrency_key IS NOT NULL
                            THEN claim.key_caps[array_position(claim.key_tasks, j.task::text)]
                       END AS cap
                FROM pgqueue.jobs j
                WHERE j.state = 'queued' AND j.blocked IS NULL
                  AND j.queue = u.name
                  AND j.run_at <= at
                  AND j.task = ANY (claim.tasks)
                  AND (j.expires_at IS NULL OR j.expires_at > at)
                  -- A key already at its cap (as far as this snapshot knows) is
                  -- skipped here, so it cannot fill the claim and hold back other
                  -- keys; the exact check follows under the key's lock.
                  AND (j.concurrency_key IS NULL
                       OR NOT (j.task = ANY (claim.key_tasks))
                       OR (SELECT count(*) FROM pgqueue.jobs x
                           WHERE x.state = 'running' AND x.concurrency_key = j.concurrency_key)
                          < claim.key_caps[array_position(claim.key_tasks, j.task::text)])
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT u.room
                FOR UPDATE SKIP LOCKED
            ) c
            WHERE pq.paused IS NOT TRUE AND u.room > 0
            ORDER BY c.priority DESC, c.run_at, c.id
            LIMIT claim.n
        ),
        claimed AS (
            UPDATE pgqueue.jobs j
            SET state = 'running',
                attempt = j.attempt + 1,
                started_at = at,
                heartbeat_at = at,
                worker_id = claim.worker_id
            -- An id array, not a join with picked: a join may be planned as a
            -- hash join over a scan of every queued job.
            WHERE j.id = ANY (ARRAY(SELECT p.id FROM picked p))
            RETURNING j.*
        ),
        logged AS (
            INSERT INTO pgqueue.queue_starts (queue, started_at)
            SELECT c.queue, at FROM claimed c WHERE c.queue = ANY (rated)
        )
        SELECT c.id, c.queue::text, c.task::text, c.args, c.priority, c.attempt,
               c.max_attempts, c.run_at, c.created_at, c.started_at, c.timeout_seconds,
               c.trace_context
        FROM claimed c
        ORDER BY c.priority DESC, c.run_at, c.id;
        RETURN;
    END IF;

    SELECT array_agg(c.id ORDER BY c.priority DESC, c.run_at, c.id),
           array_agg(c.concurrency_key ORDER BY c.priority DESC, c.run_at, c.id),
           array_agg(c.cap ORDER BY c.priority DESC, c.run_at, c.id)
    INTO ids, keys, caps
    FROM (
        SELECT c.id, c.priority, c.run_at, c.concurrency_key, c.cap
        FROM unnest(claim.queues, rooms) AS u(name, room)
        LEFT JOIN pgqueue.queues pq ON pq.name = u.name
        CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.run_at, j.concurrency_key,
                   CASE WHEN j.concurrency_key IS NOT NULL
                        THEN claim.key_caps[array_position(claim.key_tasks, j.task::text)]
                   END AS cap
            FROM pgqueue.jobs j
            WHERE j.state = 'queued' AND j.blocked IS NULL
              AND j.queue = u.name
              AND j.run_at <= at
              AND j.task = ANY (claim.tasks)
              AND (j.expires_at IS NULL OR j.expires_at > at)
              -- A key already at its cap (as far as this snapshot knows) is
              -- skipped here, so it cannot fill the claim and hold back other
              -- keys; the exact check follows under the key's lock.
              AND (j.concurrency_key IS NULL
                   OR NOT (j.task = ANY (claim.key_tasks))
                   OR (SELECT count(*) FROM pgqueue.jobs x
                       WHERE x.state = 'running' AND x.concurrency_key = j.concurrency_key)
                      < claim.key_caps[array_position(claim.key_tasks, j.task::text)])
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT u.room
            FOR UPDATE SKIP LOCKED
        ) c
        WHERE pq.paused IS NOT TRUE AND u.room > 0
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT claim.n
    ) c;

    IF ids IS NULL THEN
        RETURN;
    END IF;

    -- (A plain expression, no query: claims without capped keys pay nothing here.)
    IF cardinality(array_remove(caps, NULL)) > 0 THEN
        -- Capped keys: lock each key, then count its running jobs afresh.
        PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.key:' || k.key, 0))
        FROM (SELECT DISTINCT k.key FROM unnest(keys, caps) AS k(key, cap)
              WHERE k.cap IS NOT NULL ORDER BY k.key) k;
        SELECT array_agg(r.id ORDER BY r.ord) INTO ids
        FROM (
            SELECT k.id, k.ord, k.key, k.cap,
                   row_number() OVER (PARTITION BY k.key ORDER BY k.ord) AS rank
            FROM unnest(ids, keys, caps) WITH ORDINALITY AS k(id, key, cap, ord)
        ) r
        WHERE r.cap IS NULL
           OR r.rank <= r.cap - (SELECT count(*) FROM pgqueue.jobs x
                                 WHERE x.state = 'running' AND x.concurrency_key = r.key);
        IF ids IS NULL THEN
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    WITH claimed AS (
        UPDATE pgqueue.jobs j
        SET state = 'running',
            attempt = j.attempt + 1,
            started_at = at,
            heartbeat_at = at,
            worker_id = claim.worker_id
        WHERE j.id = ANY (ids)
        RETURNING j.*
    ),
    logged AS (
        INSERT INTO pgqueue.queue_starts (queue, started_at)
        SELECT c.queue, at FROM claimed c WHERE c.queue = ANY (rated)
    )
    SELECT c.id, c.queue::text, c.task::text, c.args, c.priority, c.attempt, c.max_attempts,
           c.run_at, c.created_at, c.started_at, c.timeout_seconds, c.trace_context
    FROM claimed c
    ORDER BY c.priority DESC, c.run_at, c.id;
END
$$;

-- Seconds until this worker should look again for jobs (see 0005); unchanged
-- but for the language.
CREATE OR REPLACE FUNCTION pgqueue.next_claim_in(queues text[], tasks text[])
RETURNS double precision
LANGUAGE plpgsql STABLE SET jit = off SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN (
    SELECT extract(epoch FROM min(GREATEST(w.first_run_at, w.window_opens_at)) - now())::float8
    FROM (
        SELECT
            (SELECT min(j.run_at) FROM pgqueue.jobs j
             WHERE j.state = 'queued' AND j.blocked IS NULL AND j.queue = u.name
               AND j.task = ANY (next_claim_in.tasks)
               AND (j.expires_at IS NULL OR j.expires_at > now())) AS first_run_at,
            CASE WHEN q.rate_limit IS NOT NULL THEN (
                SELECT s.started_at + q.rate_period * interval '1 second'
                FROM pgqueue.queue_starts s
                WHERE s.queue = u.name
                  AND s.started_at > now() - q.rate_period * interval '1 second'
                ORDER BY s.started_at DESC
                OFFSET q.rate_limit - 1 LIMIT 1)
            END AS window_opens_at
        FROM unnest(next_claim_in.queues) AS u(name)
        LEFT JOIN pgqueue.queues q ON q.name = u.name
        WHERE q.paused IS NOT TRUE
          AND (q.concurrency_limit IS NULL OR q.concurrency_limit > (
                   SELECT count(*) FROM pgqueue.jobs r
                   WHERE r.state = 'running' AND r.queue = u.name))
    ) w
    );
END
$$;

-- 0011_claim_token: every claim of a job gets a token that never repeats, and
-- outcomes are fenced on it.
--
-- Outcomes were fenced on (worker_id, attempt). Neither identifies one attempt:
-- a fixed worker_id is reused by the next process after a restart, the attempt
-- is given back by a shutdown hand-back and reset to 0 by a retry by hand, so a
-- stale attempt could match a later one and write over its outcome.
--
-- pgqueue.jobs.claim_token: the token of the job's latest claim, taken from the
-- sequence pgqueue.claim_tokens (one value per claim statement, drawn only when
-- the claim takes a job; a job is claimed at most once per statement, so
-- (job id, claim_token) names exactly one attempt). NULL for a job never
-- claimed. Outcome writes (job_complete_many) and the shutdown hand-back
-- (job_hand_back) match it.
--
-- pgqueue.claim_v2 is pgqueue.claim (0008) that also sets and returns the
-- token. pgqueue.claim keeps its signature for workers of an older pgqueue
-- still running against this schema during a deploy: it calls claim_v2 and
-- leaves the token out of its result (those workers still fence on worker_id
-- and attempt).

CREATE SEQUENCE pgqueue.claim_tokens AS bigint;

ALTER TABLE pgqueue.jobs ADD COLUMN claim_token bigint;

CREATE FUNCTION pgqueue.claim_v2(queues text[], slots integer[], tasks text[],
                                 n integer, worker_id uuid, key_tasks text[] DEFAULT '{}',
                                 key_caps integer[] DEFAULT '{}',
                                 async_commit boolean DEFAULT false)
RETURNS TABLE (id bigint, queue text, task text, args jsonb, priority integer,
               attempt integer, max_attempts integer, run_at timestamptz,
               created_at timestamptz, started_at timestamptz,
               timeout_seconds double precision, trace_context text,
               claim_token bigint)
-- jit = off: the cached plan cannot know the per-queue LIMIT, so with a large
-- backlog its cost estimate passes the JIT thresholds and every claim spent
-- 0.5-1.3 s compiling a query that runs in 0.5 ms (1,000,000 jobs waiting).
LANGUAGE plpgsql SET jit = off SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    rooms integer[] := claim_v2.slots;
    rated text[] := '{}';
    limited boolean;
    at timestamptz;
    ids bigint[];
    keys text[];
    caps integer[];
BEGIN
    IF claim_v2.async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM 1 FROM pgqueue.queues q
    WHERE q.name = ANY (claim_v2.queues) AND NOT q.paused
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
        WHERE s.queue = q.name AND q.name = ANY (claim_v2.queues) AND q.rate_limit IS NOT NULL
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
        FROM unnest(claim_v2.queues, claim_v2.slots) WITH ORDINALITY AS u(name, slot, ord)
        LEFT JOIN pgqueue.queues q ON q.name = u.name;
    END IF;

    IF cardinality(claim_v2.key_tasks) = 0 THEN
        -- No capped key can apply: pick and claim in one statement. (The
        -- candidate query is the one below, word for word; its key-cap filter
        -- is a no-op here.)
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id, c.priority, c.run_at, c.concurrency_key, c.cap
            FROM unnest(claim_v2.queues, rooms) AS u(name, room)
            LEFT JOIN pgqueue.queues pq ON pq.name = u.name
            CROSS JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at, j.concurrency_key,
                       CASE WHEN j.concurrency_key IS NOT NULL
                            THEN claim_v2.key_caps[array_position(claim_v2.key_tasks, j.task::text)]
                       END AS cap
                FROM pgqueue.jobs j
                WHERE j.state = 'queued' AND j.blocked IS NULL
                  AND j.queue = u.name
                  AND j.run_at <= at
                  AND j.task = ANY (claim_v2.tasks)
                  AND (j.expires_at IS NULL OR j.expires_at > at)
                  -- A key already at its cap (as far as this snapshot knows) is
                  -- skipped here, so it cannot fill the claim and hold back other
                  -- keys; the exact check follows under the key's lock.
                  AND (j.concurrency_key IS NULL
                       OR NOT (j.task = ANY (claim_v2.key_tasks))
                       OR (SELECT count(*) FROM pgqueue.jobs x
                           WHERE x.state = 'running' AND x.concurrency_key = j.concurrency_key)
                          < claim_v2.key_caps[array_position(claim_v2.key_tasks, j.task::text)])
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT u.room
                FOR UPDATE SKIP LOCKED
            ) c
            WHERE pq.paused IS NOT TRUE AND u.room > 0
            ORDER BY c.priority DESC, c.run_at, c.id
            LIMIT claim_v2.n
        ),
        claimed AS (
            UPDATE pgqueue.jobs j
            SET state = 'running',
                attempt = j.attempt + 1,
                started_at = at,
                heartbeat_at = at,
                worker_id = claim_v2.worker_id,
                -- Drawn once per statement (an InitPlan), and only if a job is claimed.
                claim_token = (SELECT nextval('pgqueue.claim_tokens'))
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
               c.trace_context, c.claim_token
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
        FROM unnest(claim_v2.queues, rooms) AS u(name, room)
        LEFT JOIN pgqueue.queues pq ON pq.name = u.name
        CROSS JOIN LATERAL (
            SELECT j.id, j.priority, j.run_at, j.concurrency_key,
                   CASE WHEN j.concurrency_key IS NOT NULL
                        THEN claim_v2.key_caps[array_position(claim_v2.key_tasks, j.task::text)]
                   END AS cap
            FROM pgqueue.jobs j
            WHERE j.state = 'queued' AND j.blocked IS NULL
              AND j.queue = u.name
              AND j.run_at <= at
              AND j.task = ANY (claim_v2.tasks)
              AND (j.expires_at IS NULL OR j.expires_at > at)
              -- A key already at its cap (as far as this snapshot knows) is
              -- skipped here, so it cannot fill the claim and hold back other
              -- keys; the exact check follows under the key's lock.
              AND (j.concurrency_key IS NULL
                   OR NOT (j.task = ANY (claim_v2.key_tasks))
                   OR (SELECT count(*) FROM pgqueue.jobs x
                       WHERE x.state = 'running' AND x.concurrency_key = j.concurrency_key)
                      < claim_v2.key_caps[array_position(claim_v2.key_tasks, j.task::text)])
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT u.room
            FOR UPDATE SKIP LOCKED
        ) c
        WHERE pq.paused IS NOT TRUE AND u.room > 0
        ORDER BY c.priority DESC, c.run_at, c.id
        LIMIT claim_v2.n
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
            worker_id = claim_v2.worker_id,
                -- Drawn once per statement (an InitPlan), and only if a job is claimed.
                claim_token = (SELECT nextval('pgqueue.claim_tokens'))
        WHERE j.id = ANY (ids)
        RETURNING j.*
    ),
    logged AS (
        INSERT INTO pgqueue.queue_starts (queue, started_at)
        SELECT c.queue, at FROM claimed c WHERE c.queue = ANY (rated)
    )
    SELECT c.id, c.queue::text, c.task::text, c.args, c.priority, c.attempt, c.max_attempts,
           c.run_at, c.created_at, c.started_at, c.timeout_seconds, c.trace_context,
           c.claim_token
    FROM claimed c
    ORDER BY c.priority DESC, c.run_at, c.id;
END
$$;


-- The 0008 signature and result, for workers of an older pgqueue (see above).
CREATE OR REPLACE FUNCTION pgqueue.claim(queues text[], slots integer[], tasks text[],
                                         n integer, worker_id uuid, key_tasks text[] DEFAULT '{}',
                                         key_caps integer[] DEFAULT '{}',
                                         async_commit boolean DEFAULT false)
RETURNS TABLE (id bigint, queue text, task text, args jsonb, priority integer,
               attempt integer, max_attempts integer, run_at timestamptz,
               created_at timestamptz, started_at timestamptz,
               timeout_seconds double precision, trace_context text)
LANGUAGE sql AS $$
    SELECT c.id, c.queue, c.task, c.args, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.created_at, c.started_at, c.timeout_seconds, c.trace_context
    FROM pgqueue.claim_v2($1, $2, $3, $4, $5, $6, $7, $8) c
$$;

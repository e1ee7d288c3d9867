-- 0012_single_sources: the claim's candidate query and the archive row each
-- written once.
--
-- pgqueue.claim_candidates: the claim's choice of jobs (0008 and 0011 wrote it
-- out twice in claim_v2, once per branch). A SQL function, declared STABLE and
-- with no SET clause, so that PostgreSQL inlines it where it is called: both
-- branches of claim_v2 plan exactly the statement they planned before (same
-- index, same nodes), and claim_v2 keeps its generic plans and jit = off. Its
-- FOR UPDATE SKIP LOCKED is allowed only because it is inlined: called where
-- PostgreSQL cannot inline it (not in FROM), it refuses to run. Only claim_v2
-- calls it.
--
-- pgqueue.finished_row: the history row of a live job that leaves pgqueue.jobs
-- (the column list job_complete_many, job_expire, job_reclaim_stalled and
-- cancel_queued wrote out each). Also a SQL function that PostgreSQL inlines:
-- `(pgqueue.finished_row(...)).*` becomes the plain column list. It takes the
-- whole row a DELETE ... RETURNING j gives, the final state, last_error and
-- errors, and optionally the result and cancel_requested_at (NULL: the job's).
-- finished_at is now().

CREATE OR REPLACE FUNCTION pgqueue.claim_candidates(queues text[], rooms integer[],
                                                    tasks text[], n integer, at timestamptz,
                                                    key_tasks text[], key_caps integer[])
RETURNS TABLE (id bigint, priority integer, run_at timestamptz, concurrency_key text,
               cap integer)
LANGUAGE sql STABLE AS $$
    SELECT c.id, c.priority, c.run_at, c.concurrency_key, c.cap
    FROM unnest(claim_candidates.queues, claim_candidates.rooms) AS u(name, room)
    LEFT JOIN pgqueue.queues pq ON pq.name = u.name
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at, j.concurrency_key,
               CASE WHEN j.concurrency_key IS NOT NULL
                    THEN claim_candidates.key_caps[
                             array_position(claim_candidates.key_tasks, j.task::text)]
               END AS cap
        FROM pgqueue.jobs j
        WHERE j.state = 'queued' AND j.blocked IS NULL
          AND j.queue = u.name
          AND j.run_at <= claim_candidates.at
          AND j.task = ANY (claim_candidates.tasks)
          AND (j.expires_at IS NULL OR j.expires_at > claim_candidates.at)
          -- A key already at its cap (as far as this snapshot knows) is
          -- skipped here, so it cannot fill the claim and hold back other
          -- keys; the exact check follows under the key's lock.
          AND (j.concurrency_key IS NULL
               OR NOT (j.task = ANY (claim_candidates.key_tasks))
               OR (SELECT count(*) FROM pgqueue.jobs x
                   WHERE x.state = 'running' AND x.concurrency_key = j.concurrency_key)
                  < claim_candidates.key_caps[
                        array_position(claim_candidates.key_tasks, j.task::text)])
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT u.room
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE pq.paused IS NOT TRUE AND u.room > 0
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT claim_candidates.n
$$;

COMMENT ON FUNCTION pgqueue.claim_candidates(text[], integer[], text[], integer, timestamptz,
                                             text[], integer[])
IS 'the candidates of one claim, locked (FOR UPDATE SKIP LOCKED): inlined into claim_v2, not for direct use';

CREATE OR REPLACE FUNCTION pgqueue.finished_row(job pgqueue.jobs, state pgqueue.job_state,
                                                last_error text, errors jsonb,
                                                result jsonb DEFAULT NULL,
                                                cancel_requested_at timestamptz DEFAULT NULL)
RETURNS pgqueue.finished_jobs
LANGUAGE sql STABLE AS $$
    SELECT ROW(job.id, job.queue, job.task, job.args, job.priority, finished_row.state,
               job.attempt, job.max_attempts, job.run_at, job.created_at, job.started_at,
               now(), job.worker_id, job.unique_key, finished_row.last_error,
               finished_row.errors, job.trace_context, job.timeout_seconds, job.expires_at,
               COALESCE(finished_row.cancel_requested_at, job.cancel_requested_at),
               job.depends_on, job.batch_id, job.concurrency_key,
               finished_row.result)::pgqueue.finished_jobs
$$;

COMMENT ON FUNCTION pgqueue.finished_row(pgqueue.jobs, pgqueue.job_state, text, jsonb, jsonb,
                                         timestamptz)
IS 'the history row of a live job that finishes now: INSERT INTO pgqueue.finished_jobs SELECT (pgqueue.finished_row(...)).*';

-- Move queued jobs to history as cancelled, each with its reason. Returns the
-- ids moved. The caller settles what depended on them.
CREATE OR REPLACE FUNCTION pgqueue.cancel_queued(job_ids bigint[], reasons text[])
RETURNS bigint[]
LANGUAGE sql AS $$
WITH gone AS (
    DELETE FROM pgqueue.jobs j
    WHERE j.id = ANY (cancel_queued.job_ids) AND j.state = 'queued'
    RETURNING j
),
archived AS (
    INSERT INTO pgqueue.finished_jobs
    SELECT (pgqueue.finished_row(g.j, 'cancelled', r.reason, (g.j).errors,
                                 cancel_requested_at => now())).*
    FROM gone g
    JOIN unnest(cancel_queued.job_ids, cancel_queued.reasons) AS r(id, reason)
        ON r.id = (g.j).id
    RETURNING id
)
SELECT COALESCE(array_agg(id), '{}') FROM archived
$$;

CREATE OR REPLACE FUNCTION pgqueue.claim_v2(queues text[], slots integer[], tasks text[],
                                            n integer, worker_id uuid,
                                            key_tasks text[] DEFAULT '{}',
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
        -- No capped key can apply: pick and claim in one statement (the
        -- candidates' key-cap filter is a no-op here).
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id
            FROM pgqueue.claim_candidates(claim_v2.queues, rooms, claim_v2.tasks, claim_v2.n,
                                          at, claim_v2.key_tasks, claim_v2.key_caps) c
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
    FROM pgqueue.claim_candidates(claim_v2.queues, rooms, claim_v2.tasks, claim_v2.n, at,
                                  claim_v2.key_tasks, claim_v2.key_caps) c;

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

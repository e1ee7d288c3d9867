CREATE SCHEMA pgqueue;

CREATE TYPE pgqueue.job_state AS ENUM (
    'queued',
    'running',
    'succeeded',
    'failed',
    'cancelled'
);

CREATE DOMAIN pgqueue.queue_name AS text
	CONSTRAINT queue_name_check CHECK (((VALUE ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'::text) AND (length(VALUE) <= 64)));

CREATE DOMAIN pgqueue.task_name AS text
	CONSTRAINT task_name_check CHECK (((VALUE ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$'::text) AND (length(VALUE) <= 200)));

CREATE FUNCTION pgqueue.add_queue(name text) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
INSERT INTO pgqueue.queues (name) VALUES (add_queue.name) ON CONFLICT DO NOTHING
$$;

CREATE FUNCTION pgqueue.after_finish(job_ids bigint[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    cancelled bigint[];
BEGIN
    cancelled := pgqueue.settle_blocked(ARRAY(
        SELECT j.id FROM pgqueue.jobs j
        WHERE j.blocked AND j.depends_on && after_finish.job_ids ORDER BY j.id));
    PERFORM pgqueue.settle_batches(ARRAY(
        SELECT h.batch_id FROM pgqueue.finished_jobs h
        -- No "batch_id IS NOT NULL" here: it invites the planner to read every
        -- finished row of the batch through finished_jobs_batch_idx instead of
        -- looking the ids up (settle_batches skips NULLs itself).
        WHERE h.id = ANY (after_finish.job_ids || cancelled)));
END
$$;

CREATE FUNCTION pgqueue.append_error(errors jsonb, error jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN jsonb_array_length(errors) >= 10
                THEN (errors - 0) || jsonb_build_array(error)
                ELSE errors || jsonb_build_array(error) END
$$;

CREATE FUNCTION pgqueue.cancel(job_id bigint, reason text DEFAULT 'cancelled by request'::text) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
    current pgqueue.job_state;
BEGIN
    SELECT j.state INTO current FROM pgqueue.jobs j WHERE j.id = cancel.job_id FOR UPDATE;
    IF current = 'queued' THEN
        PERFORM pgqueue.cancel_queued(ARRAY[cancel.job_id], ARRAY[cancel.reason]);
        PERFORM pgqueue.after_finish(ARRAY[cancel.job_id]);
        PERFORM pg_notify('pgqueue_finished', cancel.job_id::text);
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

CREATE FUNCTION pgqueue.cancel_queued(job_ids bigint[], reasons text[]) RETURNS bigint[]
    LANGUAGE sql
    AS $$
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

CREATE FUNCTION pgqueue.check_batches(batch_ids bigint[]) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    bid bigint;
    b record;
BEGIN
    FOREACH bid IN ARRAY check_batches.batch_ids LOOP
        SELECT jb.sealed_at, jb.created_by INTO b FROM pgqueue.job_batches jb WHERE jb.id = bid;
        IF NOT FOUND OR b.sealed_at IS NOT NULL THEN
            RAISE EXCEPTION 'pgqueue: batch % does not exist or is sealed', bid
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF b.created_by IS DISTINCT FROM session_user AND b.created_by IS NOT NULL THEN
            RAISE EXCEPTION 'pgqueue: batch % belongs to role %; role % cannot add jobs to it',
                bid, b.created_by, session_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION pgqueue.claim(queues text[], slots integer[], tasks text[], n integer, worker_id uuid, key_tasks text[] DEFAULT '{}'::text[], key_caps integer[] DEFAULT '{}'::integer[], async_commit boolean DEFAULT false) RETURNS TABLE(id bigint, queue text, task text, args jsonb, priority integer, attempt integer, max_attempts integer, run_at timestamp with time zone, created_at timestamp with time zone, started_at timestamp with time zone, timeout_seconds double precision, trace_context text)
    LANGUAGE sql
    AS $_$
    SELECT c.id, c.queue, c.task, c.args, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.created_at, c.started_at, c.timeout_seconds, c.trace_context
    FROM pgqueue.claim_v2($1, $2, $3, $4, $5, $6, $7, $8) c
$_$;

CREATE FUNCTION pgqueue.claim_candidates(queues text[], rooms integer[], bases double precision[], strides double precision[], fair boolean[], cursors text[], tasks text[], n integer, at timestamp with time zone, key_tasks text[], key_caps integer[]) RETURNS TABLE(id bigint, priority integer, run_at timestamp with time zone, concurrency_key text, cap integer, turn double precision)
    LANGUAGE sql STABLE
    AS $$
    SELECT c.id, c.priority, c.run_at, c.concurrency_key, c.cap,
           COALESCE(u.base + c.rank * u.stride, 0) AS turn
    FROM unnest(claim_candidates.queues, claim_candidates.rooms, claim_candidates.bases,
                claim_candidates.strides, claim_candidates.fair, claim_candidates.cursors)
         AS u(name, room, base, stride, fair, cursor)
    LEFT JOIN pgqueue.queues pq ON pq.name = u.name
    CROSS JOIN LATERAL (
        -- The queue's candidates, ranked: in a fair queue first its round
        -- (tier 0: the first jobs of each of the next keys after the cursor,
        -- key by key, r-th job of every key before the (r+1)-th of any), then
        -- by priority, run_at, id (tier 1: jobs without a key, and the rest
        -- of the room when the round's keys run short); a job in both counts
        -- in its round.
        SELECT d.id, d.priority, d.run_at, d.concurrency_key, d.cap,
               row_number() OVER (ORDER BY d.tier, d.r, d.p) AS rank
        FROM (
            SELECT DISTINCT ON (x.id) x.*
            FROM (
                SELECT 1 AS tier,
                       row_number() OVER (ORDER BY l.priority DESC, l.run_at, l.id) AS r,
                       0 AS p, l.id, l.priority, l.run_at, l.concurrency_key, l.cap
                FROM (
                    SELECT j.id, j.priority, j.run_at, j.concurrency_key,
                           CASE WHEN j.concurrency_key IS NOT NULL
                                THEN claim_candidates.key_caps[
                                         array_position(claim_candidates.key_tasks,
                                                        j.task::text)]
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
                               WHERE x.state = 'running'
                                 AND x.concurrency_key = j.concurrency_key)
                              < claim_candidates.key_caps[
                                    array_position(claim_candidates.key_tasks, j.task::text)])
                    ORDER BY j.priority DESC, j.run_at, j.id
                    LIMIT u.room
                    FOR UPDATE SKIP LOCKED
                ) l
                UNION ALL
                SELECT 0, k.r, f.p, k.id, k.priority, k.run_at, f.key, k.cap
                FROM pgqueue.claim_round_keys(u.name, u.cursor, u.room, u.fair,
                                              claim_candidates.tasks, claim_candidates.at) f
                CROSS JOIN LATERAL (
                    SELECT l.id, l.priority, l.run_at, l.cap,
                           row_number() OVER (ORDER BY l.priority DESC, l.run_at, l.id) AS r
                    FROM (
                        SELECT j.id, j.priority, j.run_at,
                               claim_candidates.key_caps[
                                   array_position(claim_candidates.key_tasks, j.task::text)]
                                   AS cap
                        FROM pgqueue.jobs j
                        WHERE j.state = 'queued' AND j.blocked IS NULL
                          AND j.queue = u.name AND j.concurrency_key = f.key
                          AND j.run_at <= claim_candidates.at
                          AND j.task = ANY (claim_candidates.tasks)
                          AND (j.expires_at IS NULL OR j.expires_at > claim_candidates.at)
                          AND (NOT (j.task = ANY (claim_candidates.key_tasks))
                               OR (SELECT count(*) FROM pgqueue.jobs x
                                   WHERE x.state = 'running' AND x.concurrency_key = f.key)
                                  < claim_candidates.key_caps[
                                        array_position(claim_candidates.key_tasks,
                                                       j.task::text)])
                        ORDER BY j.priority DESC, j.run_at, j.id
                        LIMIT f.per_key
                        FOR UPDATE SKIP LOCKED
                    ) l
                ) k
            ) x
            ORDER BY x.id, x.tier
        ) d
        ORDER BY d.tier, d.r, d.p
        LIMIT u.room
    ) c
    WHERE pq.paused IS NOT TRUE AND u.room > 0
    ORDER BY turn, c.priority DESC, c.run_at, c.id
    LIMIT claim_candidates.n
$$;

COMMENT ON FUNCTION pgqueue.claim_candidates(queues text[], rooms integer[], bases double precision[], strides double precision[], fair boolean[], cursors text[], tasks text[], n integer, at timestamp with time zone, key_tasks text[], key_caps integer[]) IS 'the candidates of one claim with their turns, locked (FOR UPDATE SKIP LOCKED): inlined into claim_v3, not for direct use';

CREATE FUNCTION pgqueue.claim_round_keys(queue text, cursor text, room integer, fair boolean, tasks text[], at timestamp with time zone) RETURNS TABLE(key text, p integer, per_key integer)
    LANGUAGE sql STABLE
    AS $$
    -- The keys of one round of a fair queue: those after `cursor` in key order,
    -- then (wrapped) from the first key up to the cursor, at most `room`: a skip
    -- scan, whose cost grows with the keys of one round, not with the backlog
    -- nor with the keys beyond. per_key: how many jobs each key brings, so that
    -- the round fills the room.
    -- Each key is found by one descent of jobs_fair_idx (the scalar subqueries:
    -- the first key of a ready job after the one before; written out so that
    -- PostgreSQL inlines them with the rest). Keys are never '' (1 to 255
    -- characters): "> COALESCE(cursor, '')" keeps the bound an index condition
    -- in the claim's generic plan, where "cursor IS NULL OR ..." would not.
    WITH RECURSIVE ks(key, p, wrapped) AS (
        SELECT COALESCE(a.key, CASE WHEN claim_round_keys.cursor IS NOT NULL
                                    THEN (SELECT j.concurrency_key FROM pgqueue.jobs j
                                          WHERE j.state = 'queued' AND j.blocked IS NULL
                                            AND j.queue = claim_round_keys.queue AND j.concurrency_key IS NOT NULL
                                            AND j.run_at <= claim_round_keys.at AND j.task = ANY (claim_round_keys.tasks)
                                          ORDER BY j.concurrency_key LIMIT 1) END),
               1, a.key IS NULL
        FROM (SELECT (SELECT j.concurrency_key FROM pgqueue.jobs j
                       WHERE j.state = 'queued' AND j.blocked IS NULL
                         AND j.queue = claim_round_keys.queue AND j.concurrency_key IS NOT NULL
                         AND j.concurrency_key > COALESCE(claim_round_keys.cursor, '')
                         AND j.run_at <= claim_round_keys.at AND j.task = ANY (claim_round_keys.tasks)
                       ORDER BY j.concurrency_key LIMIT 1) AS key) a
        WHERE claim_round_keys.fair
        UNION ALL
        SELECT CASE WHEN n.key IS NOT NULL
                         AND (NOT ks.wrapped OR n.key <= claim_round_keys.cursor) THEN n.key
                    WHEN n.key IS NULL AND NOT ks.wrapped
                         AND claim_round_keys.cursor IS NOT NULL
                    THEN (SELECT j.concurrency_key FROM pgqueue.jobs j
                          WHERE j.state = 'queued' AND j.blocked IS NULL
                            AND j.queue = claim_round_keys.queue AND j.concurrency_key IS NOT NULL
                            AND j.run_at <= claim_round_keys.at AND j.task = ANY (claim_round_keys.tasks)
                          ORDER BY j.concurrency_key LIMIT 1)
               END,
               ks.p + 1, ks.wrapped OR n.key IS NULL
        FROM ks
        CROSS JOIN LATERAL (SELECT (SELECT j.concurrency_key FROM pgqueue.jobs j
                                     WHERE j.state = 'queued' AND j.blocked IS NULL
                                       AND j.queue = claim_round_keys.queue AND j.concurrency_key IS NOT NULL
                                       AND j.concurrency_key > ks.key
                                       AND j.run_at <= claim_round_keys.at AND j.task = ANY (claim_round_keys.tasks)
                                     ORDER BY j.concurrency_key LIMIT 1) AS key) n
        WHERE ks.key IS NOT NULL AND ks.p < claim_round_keys.room
    ),
    found AS MATERIALIZED (
        -- A wrapped pass that meets the keys already taken stops there.
        SELECT DISTINCT ON (ks.key) ks.key, ks.p FROM ks
        WHERE ks.key IS NOT NULL
          AND (NOT ks.wrapped OR claim_round_keys.cursor IS NULL
               OR ks.key <= claim_round_keys.cursor)
        ORDER BY ks.key, ks.p
    )
    SELECT f.key, f.p,
           ceil(claim_round_keys.room::numeric / (SELECT count(*) FROM found))::integer
    FROM found f
$$;

COMMENT ON FUNCTION pgqueue.claim_round_keys(queue text, cursor text, room integer, fair boolean, tasks text[], at timestamp with time zone) IS 'the keys of one round of a fair queue''s claim: inlined into claim_candidates, not for direct use';

CREATE FUNCTION pgqueue.claim_v2(queues text[], slots integer[], tasks text[], n integer, worker_id uuid, key_tasks text[] DEFAULT '{}'::text[], key_caps integer[] DEFAULT '{}'::integer[], async_commit boolean DEFAULT false) RETURNS TABLE(id bigint, queue text, task text, args jsonb, priority integer, attempt integer, max_attempts integer, run_at timestamp with time zone, created_at timestamp with time zone, started_at timestamp with time zone, timeout_seconds double precision, trace_context text, claim_token bigint)
    LANGUAGE sql
    AS $_$
    SELECT c.id, c.queue, c.task, c.args, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.created_at, c.started_at, c.timeout_seconds, c.trace_context, c.claim_token
    FROM pgqueue.claim_v3($1, $2, NULL, NULL, NULL, NULL, $3, $4, $5, $6, $7, $8) c
$_$;

CREATE FUNCTION pgqueue.claim_v3(queues text[], slots integer[], bases double precision[], strides double precision[], fair boolean[], cursors text[], tasks text[], n integer, worker_id uuid, key_tasks text[] DEFAULT '{}'::text[], key_caps integer[] DEFAULT '{}'::integer[], async_commit boolean DEFAULT false) RETURNS TABLE(id bigint, queue text, task text, args jsonb, priority integer, attempt integer, max_attempts integer, run_at timestamp with time zone, created_at timestamp with time zone, started_at timestamp with time zone, timeout_seconds double precision, trace_context text, claim_token bigint, concurrency_key text)
    LANGUAGE plpgsql
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
#variable_conflict use_column
DECLARE
    rooms integer[] := claim_v3.slots;
    rated text[] := '{}';
    limited boolean;
    at timestamptz;
    ids bigint[];
    keys text[];
    caps integer[];
BEGIN
    IF claim_v3.async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM 1 FROM pgqueue.queues q
    WHERE q.name = ANY (claim_v3.queues) AND NOT q.paused
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
        WHERE s.queue = q.name AND q.name = ANY (claim_v3.queues) AND q.rate_limit IS NOT NULL
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
        FROM unnest(claim_v3.queues, claim_v3.slots) WITH ORDINALITY AS u(name, slot, ord)
        LEFT JOIN pgqueue.queues q ON q.name = u.name;
    END IF;

    IF cardinality(claim_v3.key_tasks) = 0 THEN
        -- No capped key can apply: pick and claim in one statement (the
        -- candidates' key-cap filter is a no-op here).
        RETURN QUERY
        WITH picked AS MATERIALIZED (
            SELECT c.id, c.turn, c.priority, c.run_at
            FROM pgqueue.claim_candidates(claim_v3.queues, rooms, claim_v3.bases,
                                          claim_v3.strides, claim_v3.fair, claim_v3.cursors,
                                          claim_v3.tasks, claim_v3.n, at, claim_v3.key_tasks,
                                          claim_v3.key_caps) c
        ),
        claimed AS (
            UPDATE pgqueue.jobs j
            SET state = 'running',
                attempt = j.attempt + 1,
                started_at = at,
                heartbeat_at = at,
                worker_id = claim_v3.worker_id,
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
               c.trace_context, c.claim_token, c.concurrency_key::text
        FROM claimed c
        JOIN picked p ON p.id = c.id
        ORDER BY p.turn, p.priority DESC, p.run_at, p.id;
        RETURN;
    END IF;

    SELECT array_agg(c.id ORDER BY c.turn, c.priority DESC, c.run_at, c.id),
           array_agg(c.concurrency_key ORDER BY c.turn, c.priority DESC, c.run_at, c.id),
           array_agg(c.cap ORDER BY c.turn, c.priority DESC, c.run_at, c.id)
    INTO ids, keys, caps
    FROM pgqueue.claim_candidates(claim_v3.queues, rooms, claim_v3.bases, claim_v3.strides,
                                  claim_v3.fair, claim_v3.cursors, claim_v3.tasks, claim_v3.n,
                                  at, claim_v3.key_tasks, claim_v3.key_caps) c;

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
            worker_id = claim_v3.worker_id,
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
           c.claim_token, c.concurrency_key::text
    FROM claimed c
    JOIN unnest(ids) WITH ORDINALITY AS o(id, ord) ON o.id = c.id
    ORDER BY o.ord;
END
$$;

COMMENT ON FUNCTION pgqueue.claim_v3(queues text[], slots integer[], bases double precision[], strides double precision[], fair boolean[], cursors text[], tasks text[], n integer, worker_id uuid, key_tasks text[], key_caps integer[], async_commit boolean) IS 'claim up to n ready jobs for one worker: slots[i] at most from queues[i], in turn order (bases[i] + rank * strides[i]; bases NULL: priority, run_at, id across queues), a fair queue''s keys round-robin from cursors[i]';

CREATE FUNCTION pgqueue.compact_failed_counts() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH folded AS (
        DELETE FROM pgqueue.failed_counts c
        WHERE c.queue IN (SELECT f.queue FROM pgqueue.failed_counts f
                          GROUP BY f.queue HAVING count(*) > 1)
        RETURNING c.queue, c.n
    ),
    summed AS (
        INSERT INTO pgqueue.failed_counts (queue, n)
        SELECT f.queue, sum(f.n) FROM folded f
        GROUP BY f.queue
        HAVING sum(f.n) <> 0
    )
    SELECT count(*) FROM folded
$$;

CREATE FUNCTION pgqueue.create_batch(name text DEFAULT NULL::text, callback_task text DEFAULT NULL::text, callback_args jsonb DEFAULT NULL::jsonb, callback_queue text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
INSERT INTO pgqueue.job_batches (name, callback_task, callback_args, callback_queue)
VALUES (create_batch.name, create_batch.callback_task, create_batch.callback_args,
        create_batch.callback_queue)
RETURNING id
$$;

CREATE FUNCTION pgqueue.debounce_pending(unique_key text, seconds double precision, replace boolean, args jsonb, meta jsonb, tags text[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    pending bigint;
BEGIN
    -- Called directly too, it never makes a job due before now.
    IF NOT debounce_pending.seconds > 0 THEN
        RAISE EXCEPTION 'pgqueue.debounce_pending: seconds must be > 0, got %',
            debounce_pending.seconds USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgqueue.jobs j
    SET run_at = now() + debounce_pending.seconds * interval '1 second',
        args = CASE WHEN debounce_pending.replace
                    THEN COALESCE(debounce_pending.args, '{}'::jsonb) ELSE j.args END,
        meta = CASE WHEN debounce_pending.replace
                    THEN COALESCE(debounce_pending.meta, '{}'::jsonb) ELSE j.meta END,
        tags = CASE WHEN debounce_pending.replace
                    THEN COALESCE(debounce_pending.tags, '{}'::text[]) ELSE j.tags END
    WHERE j.unique_key = debounce_pending.unique_key AND j.state = 'queued'
    RETURNING j.id INTO pending;
    IF pending IS NULL THEN
        UPDATE pgqueue.jobs j SET unique_key = NULL
        WHERE j.unique_key = debounce_pending.unique_key AND j.state = 'running';
    END IF;
    RETURN pending;
END
$$;

CREATE FUNCTION pgqueue.duration_bounds() RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT '{0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1,2,5,10,20,50,100,200,500,1000,2000,3600}'::double precision[]
$$;

COMMENT ON FUNCTION pgqueue.duration_bounds() IS 'upper bounds (seconds) of the run-duration histogram of pgqueue.finished_rollups: 22 bins';

CREATE FUNCTION pgqueue.duration_histogram(bins integer[], counts bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT array_agg(COALESCE(s.n, 0)::bigint ORDER BY i.i)
    FROM generate_series(0, 21) AS i(i)
    LEFT JOIN (SELECT u.b, sum(u.c) AS n FROM unnest(bins, counts) AS u(b, c)
               WHERE u.b IS NOT NULL GROUP BY u.b) s ON s.b = i.i
$$;

CREATE FUNCTION pgqueue.enqueue(task text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, delay_seconds double precision DEFAULT NULL::double precision, trace_context text DEFAULT NULL::text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, ttl_seconds double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], concurrency_key text DEFAULT NULL::text, batch_id bigint DEFAULT NULL::bigint, tags text[] DEFAULT NULL::text[], meta jsonb DEFAULT NULL::jsonb, unique_for_seconds double precision DEFAULT NULL::double precision, debounce_seconds double precision DEFAULT NULL::double precision, on_conflict text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    r record;
    given_tags text[] := enqueue.tags;
BEGIN
    IF cardinality(given_tags) > 1 AND array_ndims(given_tags) = 1 THEN
        given_tags := ARRAY(SELECT u.t FROM unnest(given_tags) WITH ORDINALITY AS u(t, n)
                            GROUP BY u.t ORDER BY min(u.n));
    END IF;
    SELECT * INTO r FROM pgqueue.try_enqueue(
        task => enqueue.task, args => enqueue.args, queue => enqueue.queue,
        priority => enqueue.priority, run_at => enqueue.run_at,
        max_attempts => enqueue.max_attempts, unique_key => enqueue.unique_key,
        delay_seconds => enqueue.delay_seconds, trace_context => enqueue.trace_context,
        expires_at => enqueue.expires_at, ttl_seconds => enqueue.ttl_seconds,
        depends_on => enqueue.depends_on, concurrency_key => enqueue.concurrency_key,
        batch_id => enqueue.batch_id, tags => given_tags, meta => enqueue.meta,
        unique_for_seconds => enqueue.unique_for_seconds,
        debounce_seconds => enqueue.debounce_seconds, on_conflict => enqueue.on_conflict);
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

CREATE FUNCTION pgqueue.failed_counts_add() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO pgqueue.failed_counts (queue, n) VALUES (NEW.queue, 1);
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.failed_counts_track() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO pgqueue.failed_counts (queue, n)
        SELECT r.queue, -count(*) FROM deleted_rows r
        WHERE r.state = 'failed'
        GROUP BY r.queue;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO pgqueue.failed_counts (queue, n)
        SELECT d.queue, sum(d.n)
        FROM (SELECT r.queue, 1 FROM new_rows r WHERE r.state = 'failed'
              UNION ALL
              SELECT r.queue, -1 FROM old_rows r WHERE r.state = 'failed') AS d(queue, n)
        GROUP BY d.queue
        HAVING sum(d.n) <> 0;
    ELSIF TG_OP = 'TRUNCATE' THEN
        -- TRUNCATE, not DELETE: like the TRUNCATE that fired it, it waits for
        -- everyone using the table (a compaction under way) and then removes
        -- every row, also those this transaction's snapshot does not see
        -- (REPEATABLE READ). The table is in use when the same statement
        -- truncates it too (TRUNCATE pgqueue.finished_jobs, pgqueue.failed_counts):
        -- then it is empty already, and the DELETE finds nothing.
        BEGIN
            TRUNCATE pgqueue.failed_counts;
        EXCEPTION WHEN object_in_use THEN
            LOCK TABLE pgqueue.failed_counts IN EXCLUSIVE MODE;
            DELETE FROM pgqueue.failed_counts;
        END;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.finished_job_tags_add() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO pgqueue.finished_job_tags (tag, job_id)
    SELECT DISTINCT t.tag, NEW.id FROM unnest(NEW.tags) AS t(tag)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.finished_job_tags_track() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM pgqueue.finished_job_tags t
        USING (SELECT r.id, u.tag FROM deleted_rows r
               CROSS JOIN LATERAL unnest(r.tags) AS u(tag)
               WHERE r.tags OPERATOR(pg_catalog.<>) '{}') d
        WHERE t.tag OPERATOR(pg_catalog.=) d.tag AND t.job_id OPERATOR(pg_catalog.=) d.id;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only rows whose tags changed (an update of anything else moves nothing).
        DELETE FROM pgqueue.finished_job_tags t
        USING (SELECT o.id, u.tag FROM old_rows o
               JOIN new_rows n ON n.id OPERATOR(pg_catalog.=) o.id
               CROSS JOIN LATERAL unnest(o.tags) AS u(tag)
               WHERE o.tags IS DISTINCT FROM n.tags) d
        WHERE t.tag OPERATOR(pg_catalog.=) d.tag AND t.job_id OPERATOR(pg_catalog.=) d.id;
        INSERT INTO pgqueue.finished_job_tags (tag, job_id)
        SELECT DISTINCT u.tag, n.id FROM new_rows n
        LEFT JOIN old_rows o ON o.id OPERATOR(pg_catalog.=) n.id
        CROSS JOIN LATERAL unnest(n.tags) AS u(tag)
        WHERE o.tags IS DISTINCT FROM n.tags
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'TRUNCATE' THEN
        -- As failed_counts_track: TRUNCATE waits for everyone using the table;
        -- when the same statement truncates it too, it is empty already.
        BEGIN
            TRUNCATE pgqueue.finished_job_tags;
        EXCEPTION WHEN object_in_use THEN
            LOCK TABLE pgqueue.finished_job_tags IN EXCLUSIVE MODE;
            DELETE FROM pgqueue.finished_job_tags;
        END;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.tags_valid(tags text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT cardinality(tags) <= 20
       AND array_position(tags, NULL) IS NULL
       AND COALESCE(array_length(tags, 2), 0) = 0
       AND NOT EXISTS (SELECT 1 FROM unnest(tags) AS t(tag)
                       WHERE length(t.tag) NOT BETWEEN 1 AND 100)
$$;

COMMENT ON FUNCTION pgqueue.tags_valid(tags text[]) IS 'a job''s tags: at most 20, one-dimensional, each 1 to 100 characters, none NULL';

CREATE FUNCTION pgqueue.timestamp_in_bounds(at timestamp with time zone) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
SELECT at >= '1970-01-01 00:00:00+00'::timestamptz
   AND at < '9999-12-31 00:00:00+00'::timestamptz
$$;

COMMENT ON FUNCTION pgqueue.timestamp_in_bounds(at timestamp with time zone) IS 'true when a stored pgqueue timestamp is from 1970-01-01 up to (not including) 9999-12-31 UTC; null for null';

CREATE TABLE pgqueue.finished_jobs (
    id bigint NOT NULL,
    queue text NOT NULL,
    task text NOT NULL,
    args jsonb NOT NULL,
    priority integer NOT NULL,
    state pgqueue.job_state NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    run_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id uuid,
    unique_key text,
    last_error text,
    errors jsonb NOT NULL,
    trace_context text,
    timeout_seconds double precision,
    expires_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    depends_on bigint[],
    batch_id bigint,
    concurrency_key text,
    result jsonb,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    meta jsonb DEFAULT '{}'::jsonb NOT NULL,
    progress jsonb,
    snoozes integer DEFAULT 0 NOT NULL,
    CONSTRAINT finished_jobs_cancel_requested_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(cancel_requested_at)),
    CONSTRAINT finished_jobs_created_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(created_at)),
    CONSTRAINT finished_jobs_expires_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(expires_at)),
    CONSTRAINT finished_jobs_final_state CHECK ((state = ANY (ARRAY['succeeded'::pgqueue.job_state, 'failed'::pgqueue.job_state, 'cancelled'::pgqueue.job_state]))),
    CONSTRAINT finished_jobs_finished_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(finished_at)),
    CONSTRAINT finished_jobs_run_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(run_at)),
    CONSTRAINT finished_jobs_started_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(started_at))
);

CREATE TABLE pgqueue.jobs (
    id bigint NOT NULL,
    queue pgqueue.queue_name DEFAULT 'default'::text NOT NULL,
    task pgqueue.task_name NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    state pgqueue.job_state DEFAULT 'queued'::pgqueue.job_state NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    heartbeat_at timestamp with time zone,
    worker_id uuid,
    unique_key text,
    last_error text,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    trace_context text,
    timeout_seconds double precision,
    expires_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    depends_on bigint[],
    batch_id bigint,
    concurrency_key text,
    blocked boolean,
    has_dependents boolean,
    claim_token bigint,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    meta jsonb DEFAULT '{}'::jsonb NOT NULL,
    progress jsonb,
    snoozes integer DEFAULT 0 NOT NULL,
    CONSTRAINT jobs_args_object CHECK ((jsonb_typeof(args) = 'object'::text)),
    CONSTRAINT jobs_attempt_range CHECK ((attempt >= 0)),
    CONSTRAINT jobs_blocked_queued CHECK (((blocked IS NULL) OR ((state = 'queued'::pgqueue.job_state) AND (depends_on IS NOT NULL)))),
    CONSTRAINT jobs_blocked_true CHECK (blocked),
    CONSTRAINT jobs_cancel_requested_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(cancel_requested_at)),
    CONSTRAINT jobs_concurrency_key_length CHECK (((length(concurrency_key) >= 1) AND (length(concurrency_key) <= 255))),
    CONSTRAINT jobs_created_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(created_at)),
    CONSTRAINT jobs_errors_array CHECK ((jsonb_typeof(errors) = 'array'::text)),
    CONSTRAINT jobs_expires_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(expires_at)),
    CONSTRAINT jobs_heartbeat_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(heartbeat_at)),
    CONSTRAINT jobs_live_state CHECK ((state = ANY (ARRAY['queued'::pgqueue.job_state, 'running'::pgqueue.job_state]))),
    CONSTRAINT jobs_max_attempts_range CHECK ((max_attempts >= 1)),
    CONSTRAINT jobs_meta_object CHECK ((jsonb_typeof(meta) = 'object'::text)),
    CONSTRAINT jobs_priority_range CHECK (((priority >= '-1000'::integer) AND (priority <= 1000))),
    CONSTRAINT jobs_progress_object CHECK (((progress IS NULL) OR (jsonb_typeof(progress) = 'object'::text))),
    CONSTRAINT jobs_run_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(run_at)),
    CONSTRAINT jobs_running_has_worker CHECK (((state <> 'running'::pgqueue.job_state) OR (worker_id IS NOT NULL))),
    CONSTRAINT jobs_snoozes_range CHECK ((snoozes >= 0)),
    CONSTRAINT jobs_started_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(started_at)),
    CONSTRAINT jobs_tags_valid CHECK (pgqueue.tags_valid(tags)),
    CONSTRAINT jobs_timeout_positive CHECK ((timeout_seconds > (0)::double precision)),
    CONSTRAINT jobs_unique_key_length CHECK (((length(unique_key) >= 1) AND (length(unique_key) <= 255)))
);

CREATE FUNCTION pgqueue.finished_row(job pgqueue.jobs, state pgqueue.job_state, last_error text, errors jsonb, result jsonb DEFAULT NULL::jsonb, cancel_requested_at timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS pgqueue.finished_jobs
    LANGUAGE sql STABLE
    AS $$
    SELECT ROW(job.id, job.queue, job.task, job.args, job.priority, finished_row.state,
               job.attempt, job.max_attempts, job.run_at, job.created_at, job.started_at,
               now(), job.worker_id, job.unique_key, finished_row.last_error,
               finished_row.errors, job.trace_context, job.timeout_seconds, job.expires_at,
               COALESCE(finished_row.cancel_requested_at, job.cancel_requested_at),
               job.depends_on, job.batch_id, job.concurrency_key,
               finished_row.result, job.tags, job.meta, job.progress,
               job.snoozes)::pgqueue.finished_jobs
$$;

COMMENT ON FUNCTION pgqueue.finished_row(job pgqueue.jobs, state pgqueue.job_state, last_error text, errors jsonb, result jsonb, cancel_requested_at timestamp with time zone) IS 'the history row of a live job that finishes now: INSERT INTO pgqueue.finished_jobs SELECT (pgqueue.finished_row(...)).*';

CREATE FUNCTION pgqueue.histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT array_agg(u.x + u.y ORDER BY u.i)
    FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i)
$$;

CREATE FUNCTION pgqueue.insert_job(task text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, delay_seconds double precision DEFAULT NULL::double precision, trace_context text DEFAULT NULL::text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, ttl_seconds double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], concurrency_key text DEFAULT NULL::text, batch_id bigint DEFAULT NULL::bigint, tags text[] DEFAULT NULL::text[], meta jsonb DEFAULT NULL::jsonb, unique_for_seconds double precision DEFAULT NULL::double precision, debounce_seconds double precision DEFAULT NULL::double precision, on_conflict text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
    deps bigint[];
    keyed_mode boolean := insert_job.unique_for_seconds IS NOT NULL
                          OR insert_job.debounce_seconds IS NOT NULL;
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
    IF insert_job.on_conflict IS NOT NULL AND insert_job.on_conflict NOT IN ('keep', 'replace') THEN
        RAISE EXCEPTION 'pgqueue.enqueue: on_conflict must be ''keep'' or ''replace'', got %',
            insert_job.on_conflict USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF keyed_mode THEN
        IF insert_job.unique_key IS NULL THEN
            RAISE EXCEPTION 'pgqueue.enqueue: unique_for_seconds and debounce_seconds need a unique_key'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF insert_job.unique_for_seconds IS NOT NULL AND insert_job.debounce_seconds IS NOT NULL THEN
            RAISE EXCEPTION 'pgqueue.enqueue: give unique_for_seconds or debounce_seconds, not both'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF COALESCE(insert_job.unique_for_seconds, insert_job.debounce_seconds) <= 0 THEN
            RAISE EXCEPTION 'pgqueue.enqueue: unique_for_seconds and debounce_seconds must be > 0'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF insert_job.debounce_seconds IS NOT NULL
                AND (insert_job.run_at IS NOT NULL OR insert_job.delay_seconds IS NOT NULL) THEN
            RAISE EXCEPTION 'pgqueue.enqueue: debounce_seconds sets the run_at itself: give no run_at or delay_seconds'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF insert_job.on_conflict = 'replace' AND insert_job.debounce_seconds IS NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: on_conflict => ''replace'' needs debounce_seconds'
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
    IF keyed_mode THEN
        IF insert_job.unique_for_seconds IS NOT NULL
                AND current_setting('transaction_isolation') <> 'read committed' THEN
            RAISE EXCEPTION 'pgqueue.enqueue: unique_for_seconds needs a READ COMMITTED transaction, not %',
                upper(current_setting('transaction_isolation'))
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Under REPEATABLE READ or SERIALIZABLE a job committed by another '
                             'transaction after this one began is not seen; enqueue in a READ '
                             'COMMITTED transaction.';
        END IF;
        -- Held until this transaction ends; see the migration's header.
        PERFORM pg_advisory_xact_lock(hashtextextended('pgqueue.unique:' || insert_job.unique_key, 0));
    END IF;
    FOR i IN 1..5 LOOP
        IF insert_job.unique_for_seconds IS NOT NULL THEN
            new_id := pgqueue.unique_holder(insert_job.unique_key, insert_job.unique_for_seconds);
        ELSIF insert_job.debounce_seconds IS NOT NULL THEN
            new_id := pgqueue.debounce_pending(insert_job.unique_key, insert_job.debounce_seconds,
                                               insert_job.on_conflict = 'replace', insert_job.args,
                                               insert_job.meta, insert_job.tags);
        END IF;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, unique_key, trace_context,
             expires_at, depends_on, blocked, concurrency_key, batch_id, tags, meta)
        VALUES (
            COALESCE(insert_job.queue, 'default'), insert_job.task, COALESCE(insert_job.args, '{}'::jsonb),
            COALESCE(insert_job.priority, 0),
            COALESCE(insert_job.run_at, now() + COALESCE(insert_job.delay_seconds,
                                                         insert_job.debounce_seconds, 0)
                                                * interval '1 second'),
            COALESCE(insert_job.max_attempts, 5), insert_job.unique_key, insert_job.trace_context,
            COALESCE(insert_job.expires_at, now() + insert_job.ttl_seconds * interval '1 second'),
            deps, CASE WHEN deps IS NOT NULL THEN true END, insert_job.concurrency_key,
            insert_job.batch_id, COALESCE(insert_job.tags, '{}'::text[]),
            COALESCE(insert_job.meta, '{}'::jsonb))
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            IF deps IS NOT NULL THEN
                PERFORM pgqueue.link_dependencies(ARRAY[new_id]);
            END IF;
            RETURN new_id;
        END IF;
        -- A live job holds the key (a producer without the lock took it
        -- meanwhile): a plain unique key returns it; the other modes look again.
        IF NOT keyed_mode THEN
            SELECT j.id INTO new_id FROM pgqueue.jobs j WHERE j.unique_key = insert_job.unique_key;
            IF new_id IS NOT NULL THEN
                RETURN new_id;
            END IF;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique_key % kept changing hands', insert_job.unique_key
        USING ERRCODE = 'serialization_failure';
END
$$;

CREATE FUNCTION pgqueue.jobs_after_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    q text;
    q_forged boolean;
    q_lo bigint;
    q_hi bigint;
    forged boolean := false;
    lo bigint;
    hi bigint;
BEGIN
    FOR q, q_forged, q_lo, q_hi IN
        SELECT n.queue,
               pg_catalog.bool_or(
                   n.state OPERATOR(pg_catalog.<>) 'queued'
                   OR n.attempt OPERATOR(pg_catalog.<>) 0
                   OR n.worker_id IS NOT NULL OR n.started_at IS NOT NULL
                   OR n.heartbeat_at IS NOT NULL OR n.cancel_requested_at IS NOT NULL
                   OR n.created_at OPERATOR(pg_catalog.<>) pg_catalog.now()),
               pg_catalog.min(n.batch_id), pg_catalog.max(n.batch_id)
        FROM new_jobs n GROUP BY n.queue
    LOOP
        forged := forged OR q_forged;
        lo := LEAST(lo, q_lo);
        hi := GREATEST(hi, q_hi);
        IF NOT EXISTS (SELECT 1 FROM pgqueue.queues qs WHERE qs.name::text OPERATOR(pg_catalog.=) q)
        THEN
            PERFORM pgqueue.add_queue(q);
        END IF;
        PERFORM pg_catalog.pg_notify('pgqueue_jobs', q);
    END LOOP;
    -- The privilege is looked up only when a row needs it (nested IFs: the
    -- evaluation order of a boolean expression is not promised).
    IF forged OR lo IS NOT NULL THEN
        IF pg_catalog.has_table_privilege('pgqueue.jobs', 'UPDATE') THEN
            NULL;
        ELSIF forged THEN
            RAISE EXCEPTION 'pgqueue: role % may only insert new queued jobs', current_user
                USING ERRCODE = 'insufficient_privilege',
                      DETAIL = 'state, attempt, worker_id, started_at, heartbeat_at, '
                               'cancel_requested_at and created_at take their defaults.';
        ELSIF lo OPERATOR(pg_catalog.=) hi THEN
            PERFORM pgqueue.check_batches(ARRAY[lo]);
        ELSE
            PERFORM pgqueue.check_batches(ARRAY(
                SELECT DISTINCT n.batch_id FROM new_jobs n WHERE n.batch_id IS NOT NULL));
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.link_dependencies(job_ids bigint[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    deps bigint[];
    missing bigint;
BEGIN
    deps := ARRAY(SELECT DISTINCT d FROM pgqueue.jobs j, unnest(j.depends_on) AS d
                  WHERE j.id = ANY (link_dependencies.job_ids) AND j.blocked ORDER BY d);
    PERFORM 1 FROM pgqueue.jobs j WHERE j.id = ANY (deps) ORDER BY j.id FOR KEY SHARE;
    -- Finished dependencies too: the pruner skips rows locked here, and waits
    -- for nothing, so a dependency it has not deleted yet stays until this
    -- transaction ends, and then this job protects it.
    PERFORM 1 FROM pgqueue.finished_jobs h WHERE h.id = ANY (deps) ORDER BY h.id FOR KEY SHARE;
    SELECT d INTO missing FROM unnest(deps) AS d
    WHERE NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = d)
      AND NOT EXISTS (SELECT 1 FROM pgqueue.finished_jobs h WHERE h.id = d)
    LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue: depends_on names job %, which does not exist', missing
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgqueue.jobs j SET has_dependents = true
    WHERE j.id = ANY (deps) AND j.has_dependents IS NOT TRUE;
    PERFORM pgqueue.settle_blocked(link_dependencies.job_ids);
END
$$;

CREATE FUNCTION pgqueue.missing_dependency(deps bigint[], own_ids bigint[] DEFAULT '{}'::bigint[]) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
SELECT d
FROM unnest(missing_dependency.deps) AS d
WHERE d <> ALL (COALESCE(missing_dependency.own_ids, '{}'))
  AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = d)
  AND NOT EXISTS (SELECT 1 FROM pgqueue.finished_jobs h WHERE h.id = d)
ORDER BY d
LIMIT 1
$$;

CREATE FUNCTION pgqueue.next_claim_in(queues text[], tasks text[]) RETURNS double precision
    LANGUAGE plpgsql STABLE
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
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

CREATE FUNCTION pgqueue.pause_queue(queue text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION pgqueue.periodic_fire(name text, tick timestamp with time zone, next_tick timestamp with time zone, fire boolean) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION pgqueue.progress_percent(progress jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    -- Anyone may write a job's progress through SQL: only numbers count.
    SELECT CASE WHEN jsonb_typeof(progress -> 'done') = 'number'
                 AND jsonb_typeof(progress -> 'total') = 'number'
                 AND (progress ->> 'total')::numeric > 0
                THEN round(LEAST(100, GREATEST(0, 100 * (progress ->> 'done')::numeric
                                                     / (progress ->> 'total')::numeric)), 1)
           END
$$;

COMMENT ON FUNCTION pgqueue.progress_percent(progress jsonb) IS 'a job''s progress as a percentage: done / total, 0 to 100 with one decimal; NULL without numbers or a total > 0';

CREATE FUNCTION pgqueue.prune_history(queue text, state pgqueue.job_state, keep_seconds double precision, after_at timestamp with time zone, after_id bigint, max_rows integer) RETURNS TABLE(scanned integer, deleted integer, batches integer, last_at timestamp with time zone, last_id bigint)
    LANGUAGE plpgsql
    AS $$
DECLARE
    ids bigint[];
    ats timestamptz[];
    gone integer := 0;
    gone_batches bigint[];
    batches_gone integer := 0;
BEGIN
    SELECT array_agg(c.id ORDER BY c.finished_at, c.id),
           array_agg(c.finished_at ORDER BY c.finished_at, c.id)
    INTO ids, ats
    FROM (SELECT h.id, h.finished_at
          FROM pgqueue.finished_jobs h
          WHERE h.queue = prune_history.queue AND h.state = prune_history.state
            AND h.finished_at < now() - prune_history.keep_seconds * interval '1 second'
            AND (h.finished_at, h.id) > (COALESCE(prune_history.after_at, '-infinity'),
                                         COALESCE(prune_history.after_id, 0))
          ORDER BY h.finished_at, h.id
          LIMIT prune_history.max_rows
          FOR UPDATE SKIP LOCKED) c;
    IF ids IS NULL THEN
        RETURN QUERY SELECT 0, 0, 0, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    WITH removed AS (
        DELETE FROM pgqueue.finished_jobs h
        WHERE h.id = ANY (ids)
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j
                          WHERE j.blocked AND j.depends_on @> ARRAY[h.id])
          AND NOT EXISTS (SELECT 1 FROM pgqueue.job_batches b
                          WHERE b.id = h.batch_id AND b.finished_at IS NULL)
        RETURNING h.batch_id
    )
    SELECT count(*), array_agg(DISTINCT r.batch_id) FILTER (WHERE r.batch_id IS NOT NULL)
    INTO gone, gone_batches
    FROM removed r;
    IF gone_batches IS NOT NULL THEN
        WITH removed AS (
            DELETE FROM pgqueue.job_batches b
            WHERE b.id = ANY (gone_batches) AND b.finished_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.batch_id = b.id)
              AND NOT EXISTS (SELECT 1 FROM pgqueue.finished_jobs h WHERE h.batch_id = b.id)
            RETURNING 1
        )
        SELECT count(*) INTO batches_gone FROM removed;
    END IF;
    RETURN QUERY SELECT cardinality(ids), gone, batches_gone,
                        ats[cardinality(ats)], ids[cardinality(ids)];
END
$$;

CREATE FUNCTION pgqueue.queue_depth(queue text, bound bigint DEFAULT NULL::bigint) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE FUNCTION pgqueue.queue_rooms(queues text[]) RETURNS TABLE(queue text, max_depth integer, warn_depth integer, depth bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE FUNCTION pgqueue.queue_stats_rows() RETURNS TABLE(queue text, ready bigint, scheduled bigint, running bigint, failed bigint, succeeded_1h bigint, lag_seconds numeric, unclaimable bigint, paused boolean, blocked bigint, concurrency_limit integer, rate_limit integer, rate_period double precision, depth bigint, max_depth integer, warn_depth integer)
    LANGUAGE sql STABLE
    SET jit TO 'off'
    AS $$
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

CREATE FUNCTION pgqueue.queues_before_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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

CREATE FUNCTION pgqueue.reset_retention(queue text, state text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    removed integer;
BEGIN
    IF reset_retention.state IS NOT NULL
            AND reset_retention.state NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'pgqueue.reset_retention: state must be succeeded, failed or cancelled '
                        '(or NULL for all three), got %', quote_literal(reset_retention.state)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM pgqueue.queue_retention r
    WHERE r.queue::text = reset_retention.queue
      AND (reset_retention.state IS NULL OR r.state::text = reset_retention.state);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

CREATE FUNCTION pgqueue.result_wait_begin() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    DELETE FROM pgqueue.result_waiters w
    WHERE w.pid <> pg_backend_pid()
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid);
    INSERT INTO pgqueue.result_waiters (pid) VALUES (pg_backend_pid())
    ON CONFLICT (pid) DO NOTHING;
$$;

COMMENT ON FUNCTION pgqueue.result_wait_begin() IS 'Mark this session as waiting for results, so outcomes are announced on pgqueue_finished (LISTEN first); pgqueue.result_wait_end() when done.';

CREATE FUNCTION pgqueue.result_wait_end() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    DELETE FROM pgqueue.result_waiters WHERE pid = pg_backend_pid();
$$;

COMMENT ON FUNCTION pgqueue.result_wait_end() IS 'End what pgqueue.result_wait_begin() began for this session.';

CREATE FUNCTION pgqueue.resume_queue(queue text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION pgqueue.retention_targets(succeeded_seconds double precision, failed_seconds double precision, cancelled_seconds double precision) RETURNS TABLE(queue text, state pgqueue.job_state, keep_seconds double precision)
    LANGUAGE sql STABLE
    AS $$
    SELECT q.name::text, s.state,
           CASE WHEN r.queue IS NULL THEN s.keep_seconds
                ELSE extract(epoch FROM r.keep_for)::double precision END
    FROM pgqueue.queues q
    CROSS JOIN (VALUES ('succeeded'::pgqueue.job_state, retention_targets.succeeded_seconds),
                       ('failed'::pgqueue.job_state, retention_targets.failed_seconds),
                       ('cancelled'::pgqueue.job_state, retention_targets.cancelled_seconds))
               AS s(state, keep_seconds)
    LEFT JOIN pgqueue.queue_retention r ON r.queue = q.name AND r.state = s.state
    WHERE CASE WHEN r.queue IS NULL THEN s.keep_seconds IS NOT NULL
               ELSE r.keep_for IS NOT NULL END
    ORDER BY q.name, s.state
$$;

CREATE FUNCTION pgqueue.retry(job_id bigint) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
    found_state pgqueue.job_state;
BEGIN
    IF EXISTS (SELECT 1 FROM pgqueue.retry_jobs(ARRAY[job_id])) THEN
        RETURN 'retried';
    END IF;
    IF EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = job_id) THEN
        RETURN 'live';
    END IF;
    SELECT h.state INTO found_state FROM pgqueue.finished_jobs h WHERE h.id = job_id;
    IF found_state IS NULL THEN
        RETURN 'not_found';
    ELSIF found_state = 'succeeded' THEN
        RETURN 'succeeded';
    END IF;
    RETURN 'unique_key_taken';
END
$$;

CREATE FUNCTION pgqueue.retry_failed(queue text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE sql
    AS $$
    SELECT count(*) FROM pgqueue.retry_jobs(ARRAY(
        SELECT h.id FROM pgqueue.finished_jobs h
        WHERE h.state = 'failed' AND (retry_failed.queue IS NULL OR h.queue = retry_failed.queue)))
$$;

CREATE FUNCTION pgqueue.retry_jobs(ids bigint[]) RETURNS SETOF bigint
    LANGUAGE sql
    AS $$
    WITH moved AS (
        DELETE FROM pgqueue.finished_jobs h
        WHERE h.id = ANY (ids)
          AND h.state IN ('failed', 'cancelled')
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = h.id)
          AND (h.unique_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM pgqueue.jobs j WHERE j.unique_key = h.unique_key))
        RETURNING h.*
    )
    INSERT INTO pgqueue.jobs AS j
        (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
         unique_key, last_error, errors, trace_context, timeout_seconds, expires_at,
         depends_on, batch_id, concurrency_key, tags, meta)
    SELECT m.id, m.queue, m.task, m.args, m.priority, 'queued', 0, m.max_attempts, now(),
           m.created_at, m.unique_key, m.last_error, m.errors, m.trace_context,
           m.timeout_seconds, NULL, m.depends_on, m.batch_id, m.concurrency_key,
           m.tags, m.meta
    FROM moved m
    RETURNING j.id
$$;

CREATE FUNCTION pgqueue.roll_up_finished(max_minutes integer, settle_seconds double precision DEFAULT 60) RETURNS TABLE(rolled_from timestamp with time zone, rolled_until timestamp with time zone, jobs bigint)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    start_at timestamptz;
    end_at timestamptz;
    oldest_writer timestamptz;
    added bigint := 0;
BEGIN
    IF max_minutes IS NULL OR max_minutes < 1 THEN
        RAISE EXCEPTION 'pgqueue: max_minutes must be at least 1, got %', max_minutes
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF settle_seconds IS NULL OR settle_seconds < 0 THEN
        RAISE EXCEPTION 'pgqueue: settle_seconds must be 0 or more, got %', settle_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The row again if it was removed (TRUNCATE): else the watermark would be lost.
    INSERT INTO pgqueue.rollup_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;
    SELECT s.rolled_until INTO start_at FROM pgqueue.rollup_state s FOR UPDATE;
    SELECT min(a.xact_start) INTO oldest_writer FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL
      AND a.pid <> pg_backend_pid();
    end_at := date_trunc('minute', LEAST(now() - settle_seconds * interval '1 second',
                                         oldest_writer));
    IF start_at IS NULL THEN
        SELECT date_trunc('minute', min(h.finished_at)) INTO start_at
        FROM pgqueue.finished_jobs h;
        start_at := LEAST(COALESCE(start_at, end_at), end_at);
    END IF;
    end_at := GREATEST(start_at, LEAST(end_at, start_at + max_minutes * interval '1 minute'));
    IF end_at > start_at THEN
        WITH bins AS (
            SELECT date_trunc('minute', h.finished_at) AS minute, h.queue::text AS queue,
                   h.state,
                   width_bucket(extract(epoch FROM h.finished_at - h.started_at)::float8,
                                pgqueue.duration_bounds()) AS bin,
                   count(*) AS n,
                   sum(extract(epoch FROM h.finished_at - h.started_at)::float8) AS seconds
            FROM pgqueue.finished_jobs h
            WHERE h.finished_at >= start_at AND h.finished_at < end_at
            GROUP BY 1, 2, 3, 4
        ),
        buckets AS (
            SELECT w.width AS width_seconds,
                   to_timestamp(floor(extract(epoch FROM b.minute) / w.width) * w.width)
                       AS bucket,
                   b.queue,
                   sum(b.n) FILTER (WHERE b.state = 'succeeded') AS succeeded,
                   sum(b.n) FILTER (WHERE b.state = 'failed') AS failed,
                   sum(b.n) FILTER (WHERE b.state = 'cancelled') AS cancelled,
                   pgqueue.duration_histogram(array_agg(b.bin), array_agg(b.n)) AS durations,
                   COALESCE(sum(b.seconds), 0) AS duration_sum
            FROM bins b CROSS JOIN (VALUES (60), (600), (3600)) AS w(width)
            GROUP BY 1, 2, 3
        ),
        written AS (
            INSERT INTO pgqueue.finished_rollups AS r
                (width_seconds, bucket, queue, succeeded, failed, cancelled, durations,
                 duration_sum)
            SELECT b.width_seconds, b.bucket, b.queue, COALESCE(b.succeeded, 0),
                   COALESCE(b.failed, 0), COALESCE(b.cancelled, 0), b.durations,
                   b.duration_sum
            FROM buckets b
            ON CONFLICT (width_seconds, bucket, queue) DO UPDATE
            SET succeeded = r.succeeded + EXCLUDED.succeeded,
                failed = r.failed + EXCLUDED.failed,
                cancelled = r.cancelled + EXCLUDED.cancelled,
                durations = pgqueue.histogram_add(r.durations, EXCLUDED.durations),
                duration_sum = r.duration_sum + EXCLUDED.duration_sum
        )
        SELECT COALESCE(sum(b.n), 0) INTO added FROM bins b;
    END IF;
    UPDATE pgqueue.rollup_state s SET rolled_until = end_at, rolled_at = now();
    RETURN QUERY SELECT start_at, end_at, added;
END
$$;

COMMENT ON FUNCTION pgqueue.roll_up_finished(max_minutes integer, settle_seconds double precision) IS 'adds at most max_minutes of finished jobs from the watermark on to pgqueue.finished_rollups and moves the watermark';

CREATE FUNCTION pgqueue.sample_queues(keep_seconds double precision DEFAULT 691200) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    sampled bigint;
BEGIN
    IF keep_seconds IS NULL OR keep_seconds <= 0 THEN
        RAISE EXCEPTION 'pgqueue: keep_seconds must be more than 0, got %', keep_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH taken AS (
        INSERT INTO pgqueue.queue_samples
            (sampled_at, queue, ready, scheduled, running, blocked, unclaimable, lag_seconds)
        SELECT now(), s.queue, s.ready, s.scheduled, s.running, s.blocked, s.unclaimable,
               s.lag_seconds
        FROM pgqueue.queue_stats_rows() s
        ON CONFLICT (sampled_at, queue) DO NOTHING
        RETURNING *
    ),
    rolled AS (
        INSERT INTO pgqueue.queue_sample_rollups AS r
            (width_seconds, bucket, queue, samples, ready_sum, depth_sum, lag_max)
        SELECT w.width,
               to_timestamp(floor(extract(epoch FROM t.sampled_at) / w.width) * w.width),
               t.queue, 1, t.ready, t.ready + t.scheduled + t.running + t.blocked,
               t.lag_seconds
        FROM taken t CROSS JOIN (VALUES (600), (3600)) AS w(width)
        ON CONFLICT (width_seconds, bucket, queue) DO UPDATE
        SET samples = r.samples + 1,
            ready_sum = r.ready_sum + EXCLUDED.ready_sum,
            depth_sum = r.depth_sum + EXCLUDED.depth_sum,
            lag_max = GREATEST(r.lag_max, EXCLUDED.lag_max)
    )
    SELECT count(*) INTO sampled FROM taken;
    DELETE FROM pgqueue.queue_samples q
    WHERE q.sampled_at < now() - keep_seconds * interval '1 second';
    DELETE FROM pgqueue.queue_sample_rollups r
    WHERE r.width_seconds IN (600, 3600)
      AND r.bucket < now() - keep_seconds * interval '1 second';
    RETURN sampled;
END
$$;

COMMENT ON FUNCTION pgqueue.sample_queues(keep_seconds double precision) IS 'one sample of every queue''s depth and lag into pgqueue.queue_samples and its roll-ups; drops those older than keep_seconds';

CREATE FUNCTION pgqueue.seal_batch(batch_id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    owner name;
BEGIN
    SELECT b.created_by INTO owner FROM pgqueue.job_batches b WHERE b.id = seal_batch.batch_id;
    IF owner IS DISTINCT FROM session_user AND owner IS NOT NULL
            AND NOT has_table_privilege(session_user, 'pgqueue.job_batches', 'UPDATE') THEN
        RAISE EXCEPTION 'pgqueue.seal_batch: batch % belongs to role %; role % cannot seal it',
            seal_batch.batch_id, owner, session_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE pgqueue.job_batches b SET sealed_at = now()
    WHERE b.id = seal_batch.batch_id AND b.sealed_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgqueue.settle_batches(ARRAY[seal_batch.batch_id]);
    RETURN true;
END
$$;

CREATE FUNCTION pgqueue.set_concurrency_limit(queue text, concurrency integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO pgqueue.queues AS q (name, concurrency_limit)
    VALUES (set_concurrency_limit.queue, set_concurrency_limit.concurrency)
    ON CONFLICT (name) DO UPDATE SET concurrency_limit = EXCLUDED.concurrency_limit;
    PERFORM pg_notify('pgqueue_jobs', set_concurrency_limit.queue);
END
$$;

CREATE FUNCTION pgqueue.set_max_depth(queue text, max_depth integer) RETURNS void
    LANGUAGE sql
    AS $$
    INSERT INTO pgqueue.queues AS q (name, max_depth)
    VALUES (set_max_depth.queue, set_max_depth.max_depth)
    ON CONFLICT (name) DO UPDATE SET max_depth = EXCLUDED.max_depth
$$;

CREATE FUNCTION pgqueue.set_rate_limit(queue text, rate integer, period_seconds double precision) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF (set_rate_limit.rate IS NULL) <> (set_rate_limit.period_seconds IS NULL) THEN
        RAISE EXCEPTION 'pgqueue.set_rate_limit: give both rate and period_seconds, or neither'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgqueue.queues AS q (name, rate_limit, rate_period)
    VALUES (set_rate_limit.queue, set_rate_limit.rate, set_rate_limit.period_seconds)
    ON CONFLICT (name) DO UPDATE
        SET rate_limit = EXCLUDED.rate_limit, rate_period = EXCLUDED.rate_period;
    IF set_rate_limit.rate IS NULL THEN
        DELETE FROM pgqueue.queue_starts s WHERE s.queue = set_rate_limit.queue;
    END IF;
    PERFORM pg_notify('pgqueue_jobs', set_rate_limit.queue);
END
$$;

CREATE FUNCTION pgqueue.set_retention(queue text, state text, keep_for interval) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF set_retention.state IS NULL
            OR set_retention.state NOT IN ('succeeded', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'pgqueue.set_retention: state must be succeeded, failed or cancelled, got %',
            COALESCE(quote_literal(set_retention.state), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF set_retention.keep_for < interval '1 minute'
            OR set_retention.keep_for > interval '100 years' THEN
        RAISE EXCEPTION 'pgqueue.set_retention: keep_for must be from 1 minute to 100 years, '
                        'or NULL to keep for ever, got %', set_retention.keep_for
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgqueue.queues (name) VALUES (set_retention.queue) ON CONFLICT DO NOTHING;
    INSERT INTO pgqueue.queue_retention AS r (queue, state, keep_for)
    VALUES (set_retention.queue, set_retention.state::pgqueue.job_state, set_retention.keep_for)
    ON CONFLICT ON CONSTRAINT queue_retention_pkey
        DO UPDATE SET keep_for = EXCLUDED.keep_for, updated_at = now();
END
$$;

CREATE FUNCTION pgqueue.set_warn_depth(queue text, warn_depth integer) RETURNS void
    LANGUAGE sql
    AS $$
    INSERT INTO pgqueue.queues AS q (name, warn_depth)
    VALUES (set_warn_depth.queue, set_warn_depth.warn_depth)
    ON CONFLICT (name) DO UPDATE SET warn_depth = EXCLUDED.warn_depth
$$;

CREATE FUNCTION pgqueue.settle_batches(batch_ids bigint[]) RETURNS void
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION pgqueue.settle_blocked(job_ids bigint[]) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    todo bigint[] := settle_blocked.job_ids;
    ready bigint[];
    doomed bigint[];
    reasons text[];
    woken text[];
    gone bigint[];
    all_gone bigint[] := '{}';
BEGIN
    WHILE cardinality(todo) > 0 LOOP
        -- Lock the blocked jobs (two settlers never act on one job twice), then
        -- judge them in a statement of their own, with a fresh snapshot.
        PERFORM 1 FROM pgqueue.jobs j WHERE j.id = ANY (todo) AND j.blocked
        ORDER BY j.id FOR UPDATE;
        SELECT array_agg(v.id) FILTER (WHERE v.bad_dep IS NULL),
               array_agg(v.id) FILTER (WHERE v.bad_dep IS NOT NULL),
               array_agg('dependency ' || v.bad_dep || ' ended ' || v.bad_state)
                   FILTER (WHERE v.bad_dep IS NOT NULL)
        INTO ready, doomed, reasons
        FROM (
            SELECT j.id, b.id AS bad_dep, b.state AS bad_state
            FROM pgqueue.jobs j
            LEFT JOIN LATERAL (
                SELECT h.id, h.state FROM pgqueue.finished_jobs h
                WHERE h.id = ANY (j.depends_on) AND h.state <> 'succeeded'
                ORDER BY h.id LIMIT 1
            ) b ON true
            WHERE j.id = ANY (todo) AND j.blocked
              AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs d WHERE d.id = ANY (j.depends_on))
        ) v;
        IF ready IS NOT NULL THEN
            WITH freed AS (
                UPDATE pgqueue.jobs j SET blocked = NULL
                WHERE j.id = ANY (ready)
                RETURNING j.queue
            )
            SELECT array_agg(DISTINCT f.queue::text) INTO woken FROM freed f;
            PERFORM pg_notify('pgqueue_jobs', q) FROM unnest(woken) AS q;
        END IF;
        IF doomed IS NULL THEN
            EXIT;
        END IF;
        gone := pgqueue.cancel_queued(doomed, reasons);
        all_gone := all_gone || gone;
        todo := ARRAY(SELECT j.id FROM pgqueue.jobs j
                      WHERE j.blocked AND j.depends_on && gone ORDER BY j.id);
    END LOOP;
    RETURN all_gone;
END
$$;

CREATE FUNCTION pgqueue.settle_pending(max_items integer DEFAULT 1000) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    cancelled bigint[];
BEGIN
    cancelled := pgqueue.settle_blocked(ARRAY(
        SELECT j.id FROM pgqueue.jobs j
        WHERE j.blocked
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs d WHERE d.id = ANY (j.depends_on))
        ORDER BY j.id LIMIT settle_pending.max_items));
    PERFORM pgqueue.settle_batches(ARRAY(
        SELECT h.batch_id FROM pgqueue.finished_jobs h
        WHERE h.id = ANY (cancelled)
        UNION ALL
        SELECT b.id FROM pgqueue.job_batches b
        WHERE b.finished_at IS NULL AND b.sealed_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.batch_id = b.id)
        LIMIT settle_pending.max_items));
END
$$;

CREATE FUNCTION pgqueue.try_enqueue(task text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, delay_seconds double precision DEFAULT NULL::double precision, trace_context text DEFAULT NULL::text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, ttl_seconds double precision DEFAULT NULL::double precision, depends_on bigint[] DEFAULT NULL::bigint[], concurrency_key text DEFAULT NULL::text, batch_id bigint DEFAULT NULL::bigint, tags text[] DEFAULT NULL::text[], meta jsonb DEFAULT NULL::jsonb, unique_for_seconds double precision DEFAULT NULL::double precision, debounce_seconds double precision DEFAULT NULL::double precision, on_conflict text DEFAULT NULL::text, OUT id bigint, OUT max_depth integer, OUT warn_depth integer, OUT depth bigint) RETURNS record
    LANGUAGE plpgsql
    AS $$
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
            AND try_enqueue.unique_for_seconds IS NULL AND try_enqueue.debounce_seconds IS NULL
            AND try_enqueue.on_conflict IS NULL
            AND (try_enqueue.run_at IS NULL OR try_enqueue.delay_seconds IS NULL)
            AND (try_enqueue.expires_at IS NULL OR try_enqueue.ttl_seconds IS NULL)
            AND COALESCE(try_enqueue.delay_seconds, 0) >= 0
            AND COALESCE(try_enqueue.ttl_seconds, 1) > 0 THEN
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, trace_context, expires_at,
             concurrency_key, tags, meta)
        VALUES (
            COALESCE(try_enqueue.queue, 'default'), try_enqueue.task,
            COALESCE(try_enqueue.args, '{}'::jsonb), COALESCE(try_enqueue.priority, 0),
            COALESCE(try_enqueue.run_at,
                     now() + COALESCE(try_enqueue.delay_seconds, 0) * interval '1 second'),
            COALESCE(try_enqueue.max_attempts, 5), try_enqueue.trace_context,
            COALESCE(try_enqueue.expires_at, now() + try_enqueue.ttl_seconds * interval '1 second'),
            try_enqueue.concurrency_key, COALESCE(try_enqueue.tags, '{}'::text[]),
            COALESCE(try_enqueue.meta, '{}'::jsonb))
        RETURNING j.id INTO id;
    ELSE
        id := pgqueue.insert_job(
            task => try_enqueue.task, args => try_enqueue.args, queue => try_enqueue.queue,
            priority => try_enqueue.priority, run_at => try_enqueue.run_at,
            max_attempts => try_enqueue.max_attempts, unique_key => try_enqueue.unique_key,
            delay_seconds => try_enqueue.delay_seconds,
            trace_context => try_enqueue.trace_context, expires_at => try_enqueue.expires_at,
            ttl_seconds => try_enqueue.ttl_seconds, depends_on => try_enqueue.depends_on,
            concurrency_key => try_enqueue.concurrency_key, batch_id => try_enqueue.batch_id,
            tags => try_enqueue.tags, meta => try_enqueue.meta,
            unique_for_seconds => try_enqueue.unique_for_seconds,
            debounce_seconds => try_enqueue.debounce_seconds,
            on_conflict => try_enqueue.on_conflict);
    END IF;
END
$$;

CREATE FUNCTION pgqueue.unique_holder(unique_key text, window_seconds double precision) RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT h.id FROM (
                SELECT j.id, true AS live, j.created_at FROM pgqueue.jobs j
                WHERE j.unique_key = unique_holder.unique_key
                UNION ALL
                (SELECT f.id, false, f.created_at FROM pgqueue.finished_jobs f
                 WHERE f.unique_key = unique_holder.unique_key
                   AND f.created_at > now() - window_seconds * interval '1 second'
                 ORDER BY f.created_at DESC LIMIT 1)) h
            ORDER BY h.live DESC, h.created_at DESC LIMIT 1);
END
$$;

CREATE VIEW pgqueue.all_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.args,
    j.priority,
    j.state,
    j.attempt,
    j.max_attempts,
    j.run_at,
    j.created_at,
    j.started_at,
    NULL::timestamp with time zone AS finished_at,
    j.heartbeat_at,
    j.worker_id,
    j.unique_key,
    j.last_error,
    j.errors,
    j.trace_context,
    NULL::jsonb AS result,
    j.snoozes,
    j.progress,
    j.meta,
    j.tags
   FROM pgqueue.jobs j
UNION ALL
 SELECT h.id,
    h.queue,
    h.task,
    h.args,
    h.priority,
    h.state,
    h.attempt,
    h.max_attempts,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at,
    NULL::timestamp with time zone AS heartbeat_at,
    h.worker_id,
    h.unique_key,
    h.last_error,
    h.errors,
    h.trace_context,
    h.result,
    h.snoozes,
    h.progress,
    h.meta,
    h.tags
   FROM pgqueue.finished_jobs h;

CREATE TABLE pgqueue.job_batches (
    id bigint NOT NULL,
    name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sealed_at timestamp with time zone,
    finished_at timestamp with time zone,
    callback_task pgqueue.task_name,
    callback_queue pgqueue.queue_name,
    callback_args jsonb,
    callback_job_id bigint,
    created_by name DEFAULT SESSION_USER,
    CONSTRAINT job_batches_callback_args_object CHECK ((jsonb_typeof(callback_args) = 'object'::text)),
    CONSTRAINT job_batches_created_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(created_at)),
    CONSTRAINT job_batches_finished_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(finished_at)),
    CONSTRAINT job_batches_finished_sealed CHECK (((finished_at IS NULL) OR (sealed_at IS NOT NULL))),
    CONSTRAINT job_batches_name_length CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT job_batches_sealed_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(sealed_at))
);

CREATE VIEW pgqueue.batches AS
 SELECT b.id,
    b.name,
    (((l.pending + f.succeeded) + f.failed) + f.cancelled) AS total,
    f.succeeded,
    f.failed,
    f.cancelled,
    l.pending,
    l.running,
    b.created_at,
    LEAST(l.first_started_at, f.first_started_at) AS started_at,
    b.sealed_at,
    b.finished_at,
    (b.callback_task)::text AS callback_task,
    b.callback_job_id
   FROM ((pgqueue.job_batches b
     CROSS JOIN LATERAL ( SELECT count(*) AS pending,
            count(*) FILTER (WHERE (j.state = 'running'::pgqueue.job_state)) AS running,
            min(j.started_at) AS first_started_at
           FROM pgqueue.jobs j
          WHERE (j.batch_id = b.id)) l)
     CROSS JOIN LATERAL ( SELECT count(*) FILTER (WHERE (h.state = 'succeeded'::pgqueue.job_state)) AS succeeded,
            count(*) FILTER (WHERE (h.state = 'failed'::pgqueue.job_state)) AS failed,
            count(*) FILTER (WHERE (h.state = 'cancelled'::pgqueue.job_state)) AS cancelled,
            min(h.started_at) AS first_started_at
           FROM pgqueue.finished_jobs h
          WHERE (h.batch_id = b.id)) f);

CREATE SEQUENCE pgqueue.claim_tokens
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

CREATE TABLE pgqueue.failed_counts (
    queue text NOT NULL,
    n bigint NOT NULL
);

CREATE VIEW pgqueue.failed_jobs AS
 SELECT h.id,
    h.queue,
    h.task,
    h.attempt,
    h.max_attempts,
    h.finished_at,
    h.last_error,
    h.errors,
    h.args,
    h.worker_id,
    h.tags,
    h.meta
   FROM pgqueue.finished_jobs h
  WHERE (h.state = 'failed'::pgqueue.job_state);

CREATE TABLE pgqueue.finished_job_tags (
    tag text NOT NULL,
    job_id bigint NOT NULL
);

COMMENT ON TABLE pgqueue.finished_job_tags IS 'one row per tag of each finished job, kept by the triggers on finished_jobs';

CREATE TABLE pgqueue.finished_rollups (
    width_seconds integer NOT NULL,
    bucket timestamp with time zone NOT NULL,
    queue text NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    cancelled bigint NOT NULL,
    durations bigint[] NOT NULL,
    duration_sum double precision NOT NULL,
    CONSTRAINT finished_rollups_bins CHECK ((cardinality(durations) = 22)),
    CONSTRAINT finished_rollups_bucket_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(bucket)),
    CONSTRAINT finished_rollups_width CHECK ((width_seconds = ANY (ARRAY[60, 600, 3600])))
);

ALTER TABLE pgqueue.job_batches ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME pgqueue.job_batches_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE pgqueue.jobs ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME pgqueue.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE pgqueue.leader (
    name text NOT NULL,
    worker_id uuid NOT NULL,
    elected_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT leader_elected_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(elected_at)),
    CONSTRAINT leader_expires_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(expires_at))
);

CREATE TABLE pgqueue.migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE pgqueue.periodic (
    name text NOT NULL,
    cron text NOT NULL,
    task pgqueue.task_name NOT NULL,
    queue pgqueue.queue_name NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    on_missed text DEFAULT 'skip'::text NOT NULL,
    last_tick timestamp with time zone,
    last_job_id bigint,
    next_tick timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT periodic_last_tick_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(last_tick)),
    CONSTRAINT periodic_next_tick_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(next_tick)),
    CONSTRAINT periodic_on_missed_check CHECK ((on_missed = ANY (ARRAY['skip'::text, 'run_once'::text]))),
    CONSTRAINT periodic_updated_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(updated_at))
);

CREATE TABLE pgqueue.queue_retention (
    queue pgqueue.queue_name NOT NULL,
    state pgqueue.job_state NOT NULL,
    keep_for interval,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT queue_retention_final_state CHECK ((state = ANY (ARRAY['succeeded'::pgqueue.job_state, 'failed'::pgqueue.job_state, 'cancelled'::pgqueue.job_state]))),
    CONSTRAINT queue_retention_keep_for_range CHECK (((keep_for >= '00:01:00'::interval) AND (keep_for <= '100 years'::interval))),
    CONSTRAINT queue_retention_updated_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(updated_at))
);

COMMENT ON TABLE pgqueue.queue_retention IS 'per-queue retention of finished jobs by final state; keep_for NULL: keep for ever; no row: the workers'' --retention';

CREATE TABLE pgqueue.queue_sample_rollups (
    width_seconds integer NOT NULL,
    bucket timestamp with time zone NOT NULL,
    queue text NOT NULL,
    samples bigint NOT NULL,
    ready_sum numeric NOT NULL,
    depth_sum numeric NOT NULL,
    lag_max numeric NOT NULL,
    CONSTRAINT queue_sample_rollups_bucket_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(bucket)),
    CONSTRAINT queue_sample_rollups_width CHECK ((width_seconds = ANY (ARRAY[600, 3600])))
);

CREATE TABLE pgqueue.queue_samples (
    sampled_at timestamp with time zone NOT NULL,
    queue text NOT NULL,
    ready bigint NOT NULL,
    scheduled bigint NOT NULL,
    running bigint NOT NULL,
    blocked bigint NOT NULL,
    unclaimable bigint NOT NULL,
    lag_seconds numeric NOT NULL,
    CONSTRAINT queue_samples_sampled_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(sampled_at))
);

CREATE TABLE pgqueue.queue_starts (
    queue text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    CONSTRAINT queue_starts_started_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(started_at))
);

CREATE VIEW pgqueue.queue_stats AS
 SELECT queue_stats_rows.queue,
    queue_stats_rows.ready,
    queue_stats_rows.scheduled,
    queue_stats_rows.running,
    queue_stats_rows.failed,
    queue_stats_rows.succeeded_1h,
    queue_stats_rows.lag_seconds,
    queue_stats_rows.unclaimable,
    queue_stats_rows.paused,
    queue_stats_rows.blocked,
    queue_stats_rows.concurrency_limit,
    queue_stats_rows.rate_limit,
    queue_stats_rows.rate_period,
    queue_stats_rows.depth,
    queue_stats_rows.max_depth,
    queue_stats_rows.warn_depth
   FROM pgqueue.queue_stats_rows() queue_stats_rows(queue, ready, scheduled, running, failed, succeeded_1h, lag_seconds, unclaimable, paused, blocked, concurrency_limit, rate_limit, rate_period, depth, max_depth, warn_depth);

CREATE TABLE pgqueue.queues (
    name pgqueue.queue_name NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    paused_at timestamp with time zone,
    concurrency_limit integer,
    rate_limit integer,
    rate_period double precision,
    max_depth integer,
    warn_depth integer,
    CONSTRAINT queues_concurrency_limit_range CHECK ((concurrency_limit >= 1)),
    CONSTRAINT queues_created_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(created_at)),
    CONSTRAINT queues_max_depth_range CHECK ((max_depth >= 1)),
    CONSTRAINT queues_paused_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(paused_at)),
    CONSTRAINT queues_rate_complete CHECK (((rate_limit IS NULL) = (rate_period IS NULL))),
    CONSTRAINT queues_rate_limit_range CHECK ((rate_limit >= 1)),
    CONSTRAINT queues_rate_period_range CHECK ((rate_period > (0)::double precision)),
    CONSTRAINT queues_warn_depth_range CHECK ((warn_depth >= 1))
);

CREATE VIEW pgqueue.recent_throughput AS
 SELECT h.queue,
    date_trunc('minute'::text, h.finished_at) AS minute,
    count(*) FILTER (WHERE (h.state = 'succeeded'::pgqueue.job_state)) AS succeeded,
    count(*) FILTER (WHERE (h.state = 'failed'::pgqueue.job_state)) AS failed,
    count(*) FILTER (WHERE (h.state = 'cancelled'::pgqueue.job_state)) AS cancelled
   FROM pgqueue.finished_jobs h
  WHERE (h.finished_at > (now() - '01:00:00'::interval))
  GROUP BY h.queue, (date_trunc('minute'::text, h.finished_at));

CREATE UNLOGGED TABLE pgqueue.result_waiters (
    pid integer NOT NULL
);

COMMENT ON TABLE pgqueue.result_waiters IS 'Backends waiting for a job''s result (pgqueue.wait_for_result): while it has a row, outcome statements send NOTIFY pgqueue_finished.';

CREATE TABLE pgqueue.rollup_state (
    singleton boolean DEFAULT true NOT NULL,
    rolled_until timestamp with time zone,
    rolled_at timestamp with time zone,
    CONSTRAINT rollup_state_one CHECK (singleton),
    CONSTRAINT rollup_state_rolled_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(rolled_at)),
    CONSTRAINT rollup_state_rolled_until_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(rolled_until))
);

CREATE TABLE pgqueue.workers (
    id uuid NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    tasks text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workers_heartbeat_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(heartbeat_at)),
    CONSTRAINT workers_started_at_between_1970_and_9999 CHECK (pgqueue.timestamp_in_bounds(started_at))
);

CREATE VIEW pgqueue.running_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.attempt,
    j.max_attempts,
    j.started_at,
    round(EXTRACT(epoch FROM (now() - j.started_at)), 3) AS running_seconds,
    j.heartbeat_at,
    round(EXTRACT(epoch FROM (now() - j.heartbeat_at)), 3) AS heartbeat_age_seconds,
    j.worker_id,
    w.host AS worker_host,
    w.pid AS worker_pid,
    j.args,
    j.progress,
    pgqueue.progress_percent(j.progress) AS progress_percent,
    j.meta,
    j.snoozes,
    j.tags
   FROM (pgqueue.jobs j
     LEFT JOIN pgqueue.workers w ON ((w.id = j.worker_id)))
  WHERE (j.state = 'running'::pgqueue.job_state);

CREATE VIEW pgqueue.scheduled_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.run_at,
    round(EXTRACT(epoch FROM (j.run_at - now())), 3) AS due_in_seconds,
    j.attempt,
    j.max_attempts,
    j.last_error,
    j.args,
    j.snoozes,
    j.tags,
    j.meta
   FROM pgqueue.jobs j
  WHERE ((j.state = 'queued'::pgqueue.job_state) AND (j.run_at > now()));

ALTER TABLE ONLY pgqueue.finished_job_tags
    ADD CONSTRAINT finished_job_tags_pkey PRIMARY KEY (tag, job_id);

ALTER TABLE ONLY pgqueue.finished_jobs
    ADD CONSTRAINT finished_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgqueue.finished_rollups
    ADD CONSTRAINT finished_rollups_pkey PRIMARY KEY (width_seconds, bucket, queue);

ALTER TABLE ONLY pgqueue.job_batches
    ADD CONSTRAINT job_batches_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgqueue.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgqueue.leader
    ADD CONSTRAINT leader_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.migrations
    ADD CONSTRAINT migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY pgqueue.periodic
    ADD CONSTRAINT periodic_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.queue_retention
    ADD CONSTRAINT queue_retention_pkey PRIMARY KEY (queue, state);

ALTER TABLE ONLY pgqueue.queue_sample_rollups
    ADD CONSTRAINT queue_sample_rollups_pkey PRIMARY KEY (width_seconds, bucket, queue);

ALTER TABLE ONLY pgqueue.queue_samples
    ADD CONSTRAINT queue_samples_pkey PRIMARY KEY (sampled_at, queue);

ALTER TABLE ONLY pgqueue.queues
    ADD CONSTRAINT queues_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.result_waiters
    ADD CONSTRAINT result_waiters_pkey PRIMARY KEY (pid);

ALTER TABLE ONLY pgqueue.rollup_state
    ADD CONSTRAINT rollup_state_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY pgqueue.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

CREATE INDEX finished_jobs_batch_idx ON pgqueue.finished_jobs USING btree (batch_id, state) WHERE (batch_id IS NOT NULL);

CREATE INDEX finished_jobs_failed_idx ON pgqueue.finished_jobs USING btree (queue, id) WHERE (state = 'failed'::pgqueue.job_state);

CREATE INDEX finished_jobs_finished_at_idx ON pgqueue.finished_jobs USING brin (finished_at);

CREATE INDEX finished_jobs_queue_state_finished_idx ON pgqueue.finished_jobs USING btree (queue, state, finished_at, id);

CREATE INDEX finished_jobs_queue_state_id_idx ON pgqueue.finished_jobs USING btree (queue, state, id);

CREATE INDEX finished_jobs_unique_key_idx ON pgqueue.finished_jobs USING btree (unique_key, created_at) WHERE (unique_key IS NOT NULL);

CREATE INDEX job_batches_open_idx ON pgqueue.job_batches USING btree (id) WHERE (finished_at IS NULL);

CREATE INDEX jobs_batch_idx ON pgqueue.jobs USING btree (batch_id, id) WHERE (batch_id IS NOT NULL);

CREATE INDEX jobs_blocked_depends_idx ON pgqueue.jobs USING gin (depends_on) WHERE blocked;

CREATE INDEX jobs_blocked_idx ON pgqueue.jobs USING btree (id) WHERE blocked;

CREATE INDEX jobs_claim_idx ON pgqueue.jobs USING btree (queue, priority DESC, run_at, id) WHERE ((state = 'queued'::pgqueue.job_state) AND (blocked IS NULL));

CREATE INDEX jobs_expires_at_idx ON pgqueue.jobs USING btree (expires_at) WHERE ((expires_at IS NOT NULL) AND (state = 'queued'::pgqueue.job_state));

CREATE INDEX jobs_fair_idx ON pgqueue.jobs USING btree (queue, concurrency_key, priority DESC, run_at, id) WHERE ((state = 'queued'::pgqueue.job_state) AND (blocked IS NULL) AND (concurrency_key IS NOT NULL));

CREATE INDEX jobs_running_idx ON pgqueue.jobs USING btree (worker_id) WHERE (state = 'running'::pgqueue.job_state);

CREATE INDEX jobs_running_key_idx ON pgqueue.jobs USING btree (concurrency_key) WHERE ((state = 'running'::pgqueue.job_state) AND (concurrency_key IS NOT NULL));

CREATE INDEX jobs_tags_idx ON pgqueue.jobs USING gin (tags) WHERE (tags <> '{}'::text[]);

CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs USING btree (unique_key) WHERE (unique_key IS NOT NULL);

CREATE INDEX queue_starts_queue_idx ON pgqueue.queue_starts USING btree (queue, started_at);

CREATE TRIGGER finished_jobs_count_deleted AFTER DELETE ON pgqueue.finished_jobs REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();

CREATE TRIGGER finished_jobs_count_inserted AFTER INSERT ON pgqueue.finished_jobs FOR EACH ROW WHEN ((new.state = 'failed'::pgqueue.job_state)) EXECUTE FUNCTION pgqueue.failed_counts_add();

CREATE TRIGGER finished_jobs_count_truncated AFTER TRUNCATE ON pgqueue.finished_jobs FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();

CREATE TRIGGER finished_jobs_count_updated AFTER UPDATE ON pgqueue.finished_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();

CREATE TRIGGER finished_jobs_tags_deleted AFTER DELETE ON pgqueue.finished_jobs REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE TRIGGER finished_jobs_tags_inserted AFTER INSERT ON pgqueue.finished_jobs FOR EACH ROW WHEN ((new.tags <> '{}'::text[])) EXECUTE FUNCTION pgqueue.finished_job_tags_add();

CREATE TRIGGER finished_jobs_tags_truncated AFTER TRUNCATE ON pgqueue.finished_jobs FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE TRIGGER finished_jobs_tags_updated AFTER UPDATE ON pgqueue.finished_jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.finished_job_tags_track();

CREATE TRIGGER jobs_after_insert AFTER INSERT ON pgqueue.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.jobs_after_insert();

CREATE TRIGGER queues_before_insert BEFORE INSERT ON pgqueue.queues FOR EACH ROW EXECUTE FUNCTION pgqueue.queues_before_insert();

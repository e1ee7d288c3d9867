-- 0016_weighted_queues: a worker serving several queues can split its claims
-- among them by weight (6:3:1) or take them in a strict order, instead of by
-- priority, run_at and id across all of them (which stays the default).
--
-- How: each candidate of queue i gets a turn, bases[i] + rank * strides[i],
-- where rank is its place (1, 2, ...) among the candidates of its own queue
-- (priority, run_at, id), and the claim takes the candidates of the lowest
-- turns. The worker keeps each queue's base (a virtual time) and sends it
-- with the claim; the stride is 1 / weight. That is stride scheduling: under
-- backlog each queue gets claims in proportion to its weight, and a queue
-- with fewer candidates than its turns allow (empty, at a limit, at its local
-- slots) simply leaves the next turns to the others, in proportion to theirs
-- (work-conserving). After a claim the worker advances the bases of what it
-- took and brings a queue that came up short up to the claim's last turn, so
-- an idle queue banks no credit (pgqueue/worker/turns.py). Strict order is
-- bases 0, n+1, 2(n+1), ... with stride 1: every candidate of the first queue
-- comes before any of the second. bases NULL: every turn is 0, and the claim
-- is the one before this migration (priority, run_at, id across queues).
--
-- pgqueue.claim_candidates takes the bases and strides and returns each
-- candidate's turn; it stays a STABLE SQL function that PostgreSQL inlines
-- into pgqueue.claim_v3 (the rank is a window over each queue's locked
-- candidates, at most `rooms[i]` rows, so the cost does not grow with the
-- backlog). pgqueue.claim_v3 is claim_v2 (0012) with the bases and strides,
-- returning the jobs in turn order (the order a worker starts them).
-- pgqueue.claim_v2 stays, for workers of an older pgqueue during a deploy:
-- claim_v3 with no bases. The candidates' old signature goes (only claim_v2
-- called it).

CREATE INDEX jobs_fair_idx ON pgqueue.jobs (queue, concurrency_key, priority DESC, run_at, id)
WHERE state = 'queued' AND blocked IS NULL AND concurrency_key IS NOT NULL;

CREATE FUNCTION pgqueue.claim_round_keys(queue text, cursor text, room integer,
                                         fair boolean, tasks text[], at timestamptz)
RETURNS TABLE (key text, p integer, per_key integer)
LANGUAGE sql STABLE AS $$
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

COMMENT ON FUNCTION pgqueue.claim_round_keys(text, text, integer, boolean, text[], timestamptz)
IS 'the keys of one round of a fair queue''s claim: inlined into claim_candidates, not for direct use';

CREATE FUNCTION pgqueue.claim_candidates(queues text[], rooms integer[],
                                         bases double precision[],
                                         strides double precision[],
                                         fair boolean[], cursors text[],
                                         tasks text[], n integer, at timestamptz,
                                         key_tasks text[], key_caps integer[])
RETURNS TABLE (id bigint, priority integer, run_at timestamptz, concurrency_key text,
               cap integer, turn double precision)
LANGUAGE sql STABLE AS $$
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

COMMENT ON FUNCTION pgqueue.claim_candidates(text[], integer[], double precision[],
                                             double precision[], boolean[], text[], text[],
                                             integer, timestamptz, text[], integer[])
IS 'the candidates of one claim with their turns, locked (FOR UPDATE SKIP LOCKED): inlined into claim_v3, not for direct use';

CREATE FUNCTION pgqueue.claim_v3(queues text[], slots integer[], bases double precision[],
                                 strides double precision[], fair boolean[], cursors text[],
                                 tasks text[], n integer, worker_id uuid,
                                 key_tasks text[] DEFAULT '{}',
                                 key_caps integer[] DEFAULT '{}',
                                 async_commit boolean DEFAULT false)
RETURNS TABLE (id bigint, queue text, task text, args jsonb, priority integer, attempt integer,
               max_attempts integer, run_at timestamptz, created_at timestamptz,
               started_at timestamptz, timeout_seconds double precision, trace_context text,
               claim_token bigint, concurrency_key text)
LANGUAGE plpgsql
SET jit = off
SET plan_cache_mode = force_generic_plan
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

COMMENT ON FUNCTION pgqueue.claim_v3(text[], integer[], double precision[], double precision[],
                                     boolean[], text[], text[], integer, uuid, text[], integer[],
                                     boolean)
IS 'claim up to n ready jobs for one worker: slots[i] at most from queues[i], in turn order (bases[i] + rank * strides[i]; bases NULL: priority, run_at, id across queues), a fair queue''s keys round-robin from cursors[i]';

CREATE OR REPLACE FUNCTION pgqueue.claim_v2(queues text[], slots integer[], tasks text[],
                                            n integer, worker_id uuid,
                                            key_tasks text[] DEFAULT '{}',
                                            key_caps integer[] DEFAULT '{}',
                                            async_commit boolean DEFAULT false)
RETURNS TABLE (id bigint, queue text, task text, args jsonb, priority integer, attempt integer,
               max_attempts integer, run_at timestamptz, created_at timestamptz,
               started_at timestamptz, timeout_seconds double precision, trace_context text,
               claim_token bigint)
LANGUAGE sql AS $$
    SELECT c.id, c.queue, c.task, c.args, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.created_at, c.started_at, c.timeout_seconds, c.trace_context, c.claim_token
    FROM pgqueue.claim_v3($1, $2, NULL, NULL, NULL, NULL, $3, $4, $5, $6, $7, $8) c
$$;

DROP FUNCTION pgqueue.claim_candidates(text[], integer[], text[], integer, timestamptz,
                                       text[], integer[]);

-- 0015_enqueue_fields: tags and meta given at enqueue, and two more ways a
-- unique key holds (README: "Tags and metadata at enqueue", "Throttle and
-- debounce").
--
-- pgqueue.enqueue, pgqueue.try_enqueue and pgqueue.insert_job gain five
-- parameters, all defaulting to NULL, so every existing SQL call keeps working
-- (the old signatures are dropped: an overload would make those calls
-- ambiguous):
--
-- - tags text[], meta jsonb: stored in the columns migration 0014 added (NULL
--   means none: '{}'). The table's CHECK constraints (pgqueue.tags_valid, meta
--   an object) are the backstop; pgqueue.enqueue also drops repeated tags,
--   keeping the first of each (Python's enqueue sends them deduplicated).
-- - unique_for_seconds (throttle): the key is held by a live job, as before,
--   and also by every job created within the last unique_for_seconds, finished
--   or not: at most one job per key per window.
-- - debounce_seconds: a pending (queued) job holding the key has its run_at
--   pushed out to now() + debounce_seconds, and with on_conflict => 'replace'
--   also takes the new call's args, meta and tags; a running job holding the
--   key gives it up (its unique_key becomes NULL, in history too) and a new job
--   is inserted, due in debounce_seconds. With no holder, the new job is due in
--   debounce_seconds too. A burst of calls thus runs once, after the burst.
-- - on_conflict: 'keep' (NULL, the default: the holder stays as it is) or
--   'replace' (with debounce_seconds only).
--
-- Why a lock, and which. The live table's unique index (jobs_unique_key_idx)
-- makes two live jobs with one key impossible, and ON CONFLICT makes racing
-- producers agree on the holder. It cannot see history: between a producer's
-- look at finished_jobs and its insert, another producer's job may be
-- inserted, committed, run and moved to history, and the index then has
-- nothing to conflict with. So a throttled or debounced enqueue first takes a
-- transaction-scoped advisory lock on the key,
-- pg_advisory_xact_lock(hashtextextended('pgqueue.unique:' || key, 0)) (the
-- prefix keeps it apart from the per-key concurrency locks, 'pgqueue.key:'),
-- and only then looks for the holder, in ONE statement over jobs and
-- finished_jobs (one snapshot: a job moving from one to the other in between
-- is seen in exactly one of them), then inserts with ON CONFLICT. The lock is
-- held until the producer's transaction ends, so the next producer of that key
-- looks after the first committed (or rolled back) and sees its job. Plain
-- unique keys take no lock and cost what they did; a default-mode producer
-- racing a throttled one on the same key is still settled by the index (the
-- loop looks again after a conflict). Two different keys may hash alike: they
-- then only wait for each other's commit.
--
-- The snapshot after the lock sees the earlier producer's commit only in READ
-- COMMITTED, where each statement takes a new one. Under REPEATABLE READ or
-- SERIALIZABLE the transaction's one snapshot may predate it, so a throttled
-- enqueue there raises (feature_not_supported) rather than count wrong.
-- Debounce needs no such rule: every way it could go wrong there (a pending
-- job updated or inserted after the snapshot) already raises a serialization
-- failure, and a job that ran meanwhile is no longer pending.
--
-- A producer role may not read history or update jobs, so the look-up of a
-- throttled key's holder (pgqueue.unique_holder) and the debounce of the
-- pending job (pgqueue.debounce_pending) are SECURITY DEFINER; the insert
-- itself runs with the caller's rights, as before. A producer that knows a key
-- may thereby delay (and with 'replace', rewrite) the pending job of that key:
-- unique keys were already one namespace for all producers (README, "Least
-- privilege").
--
-- finished_jobs_unique_key_idx (unique_key, created_at), partial on keyed
-- rows, answers the throttle's look-up in history. Building it locks
-- finished_jobs against writes (completions wait) for as long as it takes; on
-- a large history, build it first with CREATE INDEX CONCURRENTLY under the same
-- name and definition, and this migration leaves it as it is.

CREATE INDEX IF NOT EXISTS finished_jobs_unique_key_idx
    ON pgqueue.finished_jobs (unique_key, created_at) WHERE unique_key IS NOT NULL;

-- The holder of a throttled key: the live job holding it, else the newest job
-- created within the last window_seconds that finished; NULL when none. One
-- statement, so one snapshot. SECURITY DEFINER: a producer may not read
-- history; it learns an id it would have been given anyway.
CREATE FUNCTION pgqueue.unique_holder(unique_key text, window_seconds double precision)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- Debounce: push the pending job holding the key out to now() + seconds (with
-- replace, it also takes args, meta and tags) and return its id; else a
-- running job holding the key gives it up, and NULL is returned (the caller
-- inserts a new job). A job claimed meanwhile is seen running: the UPDATE
-- waits for the claim's row lock and re-reads the row. SECURITY DEFINER: a
-- producer may not update jobs; what it can do here it could do through
-- pgqueue.enqueue with the same key.
CREATE FUNCTION pgqueue.debounce_pending(unique_key text, seconds double precision,
                                         replace boolean, args jsonb, meta jsonb,
                                         tags text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

DROP FUNCTION pgqueue.enqueue(text, jsonb, text, integer, timestamptz, integer, text,
                              double precision, text, timestamptz, double precision,
                              bigint[], text, bigint);
DROP FUNCTION pgqueue.try_enqueue(text, jsonb, text, integer, timestamptz, integer, text,
                                  double precision, text, timestamptz, double precision,
                                  bigint[], text, bigint);
DROP FUNCTION pgqueue.insert_job(text, jsonb, text, integer, timestamptz, integer, text,
                                 double precision, text, timestamptz, double precision,
                                 bigint[], text, bigint);

-- The insert of one job, without the depth check (periodic ticks and batch
-- callbacks call it as before), now with tags, meta and the key modes.
CREATE FUNCTION pgqueue.insert_job(task text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
                                   priority integer DEFAULT 0, run_at timestamptz DEFAULT NULL,
                                   max_attempts integer DEFAULT NULL, unique_key text DEFAULT NULL,
                                   delay_seconds double precision DEFAULT NULL,
                                   trace_context text DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
                                   ttl_seconds double precision DEFAULT NULL,
                                   depends_on bigint[] DEFAULT NULL, concurrency_key text DEFAULT NULL,
                                   batch_id bigint DEFAULT NULL, tags text[] DEFAULT NULL,
                                   meta jsonb DEFAULT NULL,
                                   unique_for_seconds double precision DEFAULT NULL,
                                   debounce_seconds double precision DEFAULT NULL,
                                   on_conflict text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
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

-- One job, checked against the queue's max_depth (as in 0013); a job with tags
-- or meta but no unique key, dependency or batch still takes the fast path.
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
                                    tags text[] DEFAULT NULL, meta jsonb DEFAULT NULL,
                                    unique_for_seconds double precision DEFAULT NULL,
                                    debounce_seconds double precision DEFAULT NULL,
                                    on_conflict text DEFAULT NULL,
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

-- The SQL function for applications and people: try_enqueue, raising when the
-- queue is full (SQLSTATE 53Q01, as in 0013). Repeated tags are dropped here,
-- the first of each kept.
CREATE FUNCTION pgqueue.enqueue(task text, args jsonb DEFAULT '{}',
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
                                batch_id bigint DEFAULT NULL,
                                tags text[] DEFAULT NULL,
                                meta jsonb DEFAULT NULL,
                                unique_for_seconds double precision DEFAULT NULL,
                                debounce_seconds double precision DEFAULT NULL,
                                on_conflict text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
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

-- 0017_retention: automatic retention of history. The leader of the workers
-- deletes finished jobs once they are older than their retention, in small
-- statements (README: "Retention").
--
-- - pgqueue.queue_retention: per-queue overrides of the workers' retention, one
--   row per (queue, final state). keep_for NULL means keep for ever ("off");
--   no row means the workers' own setting (--retention) applies.
-- - pgqueue.set_retention, pgqueue.reset_retention set and remove them.
-- - pgqueue.prune_history: one bounded step of the pruner for one queue and
--   state: the next max_rows expired rows after a cursor (finished_at, id),
--   minus those another feature still needs: a row a blocked live job depends
--   on (its outcome decides whether that job runs) and a row of a batch that
--   has not finished (the batch's counts and export read it). Batches whose
--   last job it deleted go with it (their results are columns of the rows).
-- - finished_jobs_queue_state_finished_idx on (queue, state, finished_at, id)
--   replaces finished_jobs_queue_state_idx on (queue, state, finished_at): the
--   same prefix for every query that used it, plus the id that makes the
--   pruner's cursor exact when many rows share one finished_at (every job
--   finished by one statement does). Building it holds writes to history for
--   the build (2.7 s for 200,000 rows on a loaded 2-core machine); on a large
--   history, create it first with CREATE INDEX CONCURRENTLY under this name,
--   and this migration keeps it (IF NOT EXISTS).
-- - pgqueue.link_dependencies also locks the finished dependencies it reads
--   (FOR KEY SHARE) until the caller commits, and the pruner skips locked rows:
--   a dependency the pruner is deleting makes the enqueue fail ("does not
--   exist") rather than leave a job depending on nothing.

CREATE TABLE pgqueue.queue_retention (
    queue pgqueue.queue_name NOT NULL,
    state pgqueue.job_state NOT NULL,
    keep_for interval,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, state),
    CONSTRAINT queue_retention_final_state
        CHECK (state IN ('succeeded', 'failed', 'cancelled')),
    CONSTRAINT queue_retention_keep_for_range
        CHECK (keep_for >= interval '1 minute' AND keep_for <= interval '100 years'),
    CONSTRAINT queue_retention_updated_at_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(updated_at))
);

COMMENT ON TABLE pgqueue.queue_retention
IS 'per-queue retention of finished jobs by final state; keep_for NULL: keep for ever; no row: the workers'' --retention';

-- Set how long `queue` keeps its finished jobs of `state` (NULL: for ever).
-- Creates the queue if unknown, as the other queue settings do.
CREATE FUNCTION pgqueue.set_retention(queue text, state text, keep_for interval)
RETURNS void
LANGUAGE plpgsql AS $$
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

-- Back to the workers' retention for `state` of `queue` (NULL: every state).
-- Returns how many overrides were removed.
CREATE FUNCTION pgqueue.reset_retention(queue text, state text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
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

CREATE INDEX IF NOT EXISTS finished_jobs_queue_state_finished_idx
    ON pgqueue.finished_jobs (queue, state, finished_at, id);
DROP INDEX IF EXISTS pgqueue.finished_jobs_queue_state_idx;

-- One step of the pruner: at most max_rows rows of (queue, state) that finished
-- more than keep_seconds ago, after the cursor (after_at, after_id) in
-- (finished_at, id) order, read through finished_jobs_queue_state_finished_idx
-- (an index range scan that stops at max_rows: the work is bounded whatever
-- the size of history, and the cursor passes rows deleted or kept before, so
-- their dead index entries are not walked again).
-- Two statements, each with its own snapshot: the first locks the candidates
-- FOR UPDATE SKIP LOCKED (a row a producer is making a dependency of, or one
-- being retried by hand, is left for the next round); the second deletes the
-- locked ones that nothing needs any more, judged after the locks were taken,
-- so it sees every dependent committed before. Returns how many rows were
-- scanned and deleted, how many batches went with them, and the new cursor
-- (the last row scanned; NULL when none was).
CREATE FUNCTION pgqueue.prune_history(queue text, state pgqueue.job_state,
                                      keep_seconds double precision,
                                      after_at timestamptz, after_id bigint, max_rows integer)
RETURNS TABLE (scanned integer, deleted integer, batches integer,
               last_at timestamptz, last_id bigint)
LANGUAGE plpgsql AS $$
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

-- What the pruner works through in a round: every known queue and final state
-- whose retention is not off, with the queue's override, else the workers'
-- setting (the parameters, in seconds; NULL: off). Every queue a job was ever
-- enqueued into has its row in pgqueue.queues.
CREATE FUNCTION pgqueue.retention_targets(succeeded_seconds double precision,
                                          failed_seconds double precision,
                                          cancelled_seconds double precision)
RETURNS TABLE (queue text, state pgqueue.job_state, keep_seconds double precision)
LANGUAGE sql STABLE AS $$
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

CREATE OR REPLACE FUNCTION pgqueue.link_dependencies(job_ids bigint[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

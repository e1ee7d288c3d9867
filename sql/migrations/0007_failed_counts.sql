-- 0007_failed_counts: queue_stats' failed count kept by triggers, not counted.
--
-- Counting the failed jobs of history grows with history: over 10,000,000
-- finished jobs (5 % failed) the four index-only scans of finished_jobs_failed_idx
-- took 75 of queue_stats' 93 ms. Now triggers on pgqueue.finished_jobs append to
-- pgqueue.failed_counts, per queue, how many failed rows were added (positive) or
-- removed (negative), and queue_stats sums those rows. The count stays exact
-- whoever writes history, in the writer's own transaction: a worker's
-- completions, the reaper, retries by hand (the rows move back to pgqueue.jobs),
-- pruning, a plain DELETE or UPDATE, TRUNCATE.
--
-- Why deltas, not one counter row per queue: every failing completion would have
-- to update (and lock until commit) its queue's row, so workers failing jobs of
-- one queue would queue up behind each other. Appended rows lock nothing but
-- themselves. The leader's maintenance folds them into one row per queue every
-- reaper tick (pgqueue.compact_failed_counts), so queue_stats sums about one row
-- per queue plus what failed since the last tick, whatever the size of history.
--
-- Inserts are counted by a row trigger whose WHEN clause only lets failed rows
-- through; deletes and updates by statement triggers with transition tables.
-- Completions are the hot path and nearly all of them succeed: a succeeded row
-- costs the WHEN test and nothing else (no call, no copy of the row). A statement
-- trigger on INSERT (with a transition table) would run on every completion
-- statement whatever its outcome: measured inside job_complete_many (EXPLAIN
-- ANALYZE, trigger time), 31-39 us per statement of 1 to 50 succeeded jobs
-- (the statement itself: 160-900 us), against 0 for the row trigger. A failed
-- row costs the row trigger 6-7 us in batches of 10 to 50 (22 us alone) and
-- appends one delta row. Deletes come in bulk (pruning, retrying every failed
-- job), so there one statement call appends one row per queue.

-- Deltas of the number of failed jobs in history, per queue. The current count
-- of a queue is sum(n) over its rows. No index: queue_stats reads the whole
-- table in one pass, and the maintenance keeps it small.
CREATE TABLE pgqueue.failed_counts (
    queue text NOT NULL,
    n     bigint NOT NULL
);

-- Both trigger functions are SECURITY DEFINER (with a fixed search_path):
-- whoever may write history keeps the counts right, with no right of their own
-- on pgqueue.failed_counts.

-- One failed row inserted into history: +1 for its queue.
CREATE FUNCTION pgqueue.failed_counts_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO pgqueue.failed_counts (queue, n) VALUES (NEW.queue, 1);
    RETURN NULL;
END
$$;

-- Per statement: appends, per queue, the failed rows a DELETE removed or an
-- UPDATE changed (state or queue); clears the counts when history is truncated.
CREATE FUNCTION pgqueue.failed_counts_track() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- Nothing may write history between the seed below and the triggers: writers
-- wait for this transaction (readers do not).
LOCK TABLE pgqueue.finished_jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER finished_jobs_count_inserted
    AFTER INSERT ON pgqueue.finished_jobs
    FOR EACH ROW WHEN (NEW.state = 'failed')
    EXECUTE FUNCTION pgqueue.failed_counts_add();
CREATE TRIGGER finished_jobs_count_deleted
    AFTER DELETE ON pgqueue.finished_jobs
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();
CREATE TRIGGER finished_jobs_count_updated
    AFTER UPDATE ON pgqueue.finished_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();
CREATE TRIGGER finished_jobs_count_truncated
    AFTER TRUNCATE ON pgqueue.finished_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.failed_counts_track();

-- Existing history, counted once (under the lock above, in this transaction: the
-- migration runs READ COMMITTED, so this statement sees every committed row).
INSERT INTO pgqueue.failed_counts (queue, n)
SELECT h.queue, count(*) FROM pgqueue.finished_jobs h
WHERE h.state = 'failed'
GROUP BY h.queue;

-- Folds the deltas of every queue that has more than one row into one row (none
-- when they sum to 0); returns how many rows it removed. The sum of each queue
-- is unchanged at every moment: the removed rows and their sum commit together,
-- rows appended meanwhile are left for the next call, and of two calls at once
-- the second skips the rows the first removed. SECURITY DEFINER: a worker
-- needs no right on the table to run it.
CREATE FUNCTION pgqueue.compact_failed_counts() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- queue_stats: `failed` is the sum of the queue's deltas. Same columns as in
-- 0005. The sums are joined last so that, like every writer, the view locks
-- finished_jobs before failed_counts (a TRUNCATE of history locks them in that
-- order too).
CREATE OR REPLACE FUNCTION pgqueue.queue_stats_rows()
RETURNS TABLE (queue text, ready bigint, scheduled bigint, running bigint, failed bigint,
               succeeded_1h bigint, lag_seconds numeric, unclaimable bigint, paused boolean,
               blocked bigint, concurrency_limit integer, rate_limit integer,
               rate_period double precision)
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
    q.rate_period
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

-- 0022_result_waiters: announce finished jobs only while someone waits for a
-- result.
-- Every outcome statement used to send NOTIFY pgqueue_finished, and every
-- listening backend in the cluster (a worker's listener too, whatever channel it
-- listens on) is woken to look at each one: 9-25 % of the drain's database
-- ceiling here, paid even when no one waits for a result. A waiter
-- (pgqueue.wait_for_result) now says so in pgqueue.result_waiters for as long as
-- it waits, and the outcome statement (sql/queries/job_complete_many.sql)
-- notifies only when that table has a row.
-- A waiter that dies without saying goodbye leaves its row: the next waiter to
-- begin deletes the rows of backends that are gone. Until then the statement
-- announces as before, which costs time, not results.
-- The notifications of rarer ends (a queued job cancelled, a batch finished)
-- are sent as before.
-- UNLOGGED: the rows name live backends, which a crash of the server ends
-- anyway; a waiter's row costs no WAL.

CREATE UNLOGGED TABLE pgqueue.result_waiters (
    pid integer PRIMARY KEY
);

COMMENT ON TABLE pgqueue.result_waiters IS
    'Backends waiting for a job''s result (pgqueue.wait_for_result): while it has a row, '
    'outcome statements send NOTIFY pgqueue_finished.';

-- SECURITY DEFINER (with a fixed search_path), like pgqueue.link_dependencies: a
-- role that may read results can wait without any privilege on the table.
CREATE FUNCTION pgqueue.result_wait_begin() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM pgqueue.result_waiters w
    WHERE w.pid <> pg_backend_pid()
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid);
    INSERT INTO pgqueue.result_waiters (pid) VALUES (pg_backend_pid())
    ON CONFLICT (pid) DO NOTHING;
$$;

CREATE FUNCTION pgqueue.result_wait_end() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM pgqueue.result_waiters WHERE pid = pg_backend_pid();
$$;

COMMENT ON FUNCTION pgqueue.result_wait_begin() IS
    'Mark this session as waiting for results, so outcomes are announced on pgqueue_finished '
    '(LISTEN first); pgqueue.result_wait_end() when done.';
COMMENT ON FUNCTION pgqueue.result_wait_end() IS
    'End what pgqueue.result_wait_begin() began for this session.';

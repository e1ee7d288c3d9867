-- 0010_producer_privileges: a producer creates queued jobs, and only in its own batches.
--
-- With the producer grants documented until now (INSERT on pgqueue.jobs and
-- pgqueue.queues), a role that may only enqueue could, by plain SQL: insert a
-- job already 'running' under a made-up worker with heartbeat_at 'infinity' (never
-- reaped, never cancellable, and holding its unique key for ever); create a
-- queue row already paused or limited before the queue's first job; and seal or
-- join another role's open batch (pgqueue.seal_batch is SECURITY DEFINER).
--
-- The documented grants now give a producer INSERT on the columns a caller
-- chooses only (README, "Least privilege"), so state, attempt, worker_id,
-- started_at, heartbeat_at, created_at and the rest take their defaults, and no
-- INSERT on pgqueue.queues. What the schema itself enforces, whatever the grants:
--
-- - The insert trigger refuses a row that is not a fresh queued job (state
--   'queued', attempt 0, no worker, never started, no heartbeat, no cancel
--   request, created_at = now()) from a session whose user cannot UPDATE
--   pgqueue.jobs: a role that can update jobs could set those columns anyway,
--   so workers, admins and the owner (retry, periodic, tests) insert as before.
--   This also closes the hole for databases still on the old grants.
-- - The insert trigger records a new queue through pgqueue.add_queue (SECURITY
--   DEFINER), which inserts the name alone: a producer needs no INSERT on
--   pgqueue.queues, only SELECT on its name column.
-- - A batch belongs to the session user that opened it (job_batches.created_by,
--   session_user because pgqueue.create_batch runs as the schema owner).
--   pgqueue.seal_batch refuses someone else's batch, unless the session user may
--   UPDATE pgqueue.job_batches; the insert trigger refuses a job joining someone
--   else's batch, or a sealed or unknown one, unless the session user may UPDATE
--   pgqueue.jobs. Batches opened before this migration have no owner and stay
--   open to every role, as before.
--
-- Cost: the checks of new rows ride along in the trigger's one pass over them
-- (it already grouped them by queue); pgqueue.add_queue runs only for a queue
-- not seen before, pgqueue.check_batches only for rows in a batch.

ALTER TABLE pgqueue.job_batches ADD COLUMN created_by name;
ALTER TABLE pgqueue.job_batches ALTER COLUMN created_by SET DEFAULT session_user;

-- Records a queue by name, with no settings (not paused, no limits), if it is
-- new. SECURITY DEFINER: the insert trigger calls it for a producer that may
-- not insert into pgqueue.queues itself. Anyone may call it: it can only
-- create what a first enqueue would.
CREATE FUNCTION pgqueue.add_queue(name text)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
INSERT INTO pgqueue.queues (name) VALUES (add_queue.name) ON CONFLICT DO NOTHING
$$;

-- Raises unless every batch of batch_ids exists, is not sealed and belongs to
-- the session user (or to no one: opened before owners were recorded). The
-- insert trigger calls it for rows in a batch inserted by a session user that
-- cannot update pgqueue.jobs. SECURITY DEFINER: such a producer reads no batch.
CREATE FUNCTION pgqueue.check_batches(batch_ids bigint[])
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

-- Wake-ups as before (once per statement, one NOTIFY per queue that got a job,
-- delivered at commit), new queues recorded through pgqueue.add_queue, and the
-- checks above when the role running the statement cannot update pgqueue.jobs.
-- One pass over the new rows, grouped by queue as the wake-ups were: the checks
-- ride along (a raise after the loop undoes its inserts and notifications).
-- The function runs with the inserting role's search_path, which that role
-- chooses: every function, aggregate and operator the checks use is named with
-- its schema, so a role's own objects cannot stand in for them. (A SET
-- search_path clause would do the same at a cost on every insert statement.)
CREATE OR REPLACE FUNCTION pgqueue.jobs_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
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

-- Queue rows: whoever cannot update pgqueue.queues inserts a name alone, no
-- settings (a producer on the old grants could insert a queue already paused).
-- Row-level, but queues are inserted once each; with a fixed search_path, so
-- the inserting role's own objects cannot stand in for the ones it uses.
CREATE FUNCTION pgqueue.queues_before_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.paused OR NEW.paused_at IS NOT NULL OR NEW.concurrency_limit IS NOT NULL
            OR NEW.rate_limit IS NOT NULL OR NEW.rate_period IS NOT NULL
            OR NEW.created_at <> now())
            AND NOT has_table_privilege('pgqueue.queues', 'UPDATE') THEN
        RAISE EXCEPTION 'pgqueue: role % may only add a queue by name, without settings',
            current_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER queues_before_insert
    BEFORE INSERT ON pgqueue.queues
    FOR EACH ROW EXECUTE FUNCTION pgqueue.queues_before_insert();

CREATE OR REPLACE FUNCTION pgqueue.seal_batch(batch_id bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

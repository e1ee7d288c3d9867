-- job_created_counts: how many jobs each queue gained among the ids in (after, upto],
-- and where the jobs' id sequence stands now. The leader samples it for the
-- pgqueue_queue_enqueued_total counter: it passes the sequence value it read one
-- sample earlier as upto, so a job whose transaction commits within one sample
-- interval of taking its id is still counted.
-- A job is live (pgqueue.jobs) or in history (pgqueue.finished_jobs), never both
-- in one snapshot, so each committed job is counted once; rolled-back inserts and
-- unused reserved ids count nothing.
-- Parameters: after, upto (bigint). Returns one row: last_id (bigint, null before
-- the first job), created (json object queue -> jobs).
-- Index: the primary keys of pgqueue.jobs and pgqueue.finished_jobs (range scans).
-- Locks: none beyond a plain read; the sequence read needs USAGE on it.
SELECT pg_sequence_last_value('pgqueue.jobs_id_seq'::regclass) AS last_id,
       (SELECT coalesce(json_object_agg(c.queue, c.jobs), '{}'::json)
        FROM (SELECT n.queue, count(*) AS jobs
              FROM (SELECT j.queue::text AS queue FROM pgqueue.jobs j
                    WHERE j.id > %(after)s AND j.id <= %(upto)s
                    UNION ALL
                    SELECT h.queue FROM pgqueue.finished_jobs h
                    WHERE h.id > %(after)s AND h.id <= %(upto)s) n
              GROUP BY n.queue) c) AS created

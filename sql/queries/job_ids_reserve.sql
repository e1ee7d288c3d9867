-- job_ids_reserve: take n ids from the jobs' identity sequence, so a bulk insert
-- knows each job's id in input order without relying on RETURNING order.
-- Parameters: n.
-- Returns: one row (ids bigint[]).
SELECT array_agg(nextval('pgqueue.jobs_id_seq'))
FROM generate_series(1, %(n)s)

-- job_ids_reserve: take n ids from the jobs' identity sequence, so a bulk insert
-- knows each job's id in input order without relying on RETURNING order.
-- Parameters: n.
SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id'))
FROM generate_series(1, %(n)s)

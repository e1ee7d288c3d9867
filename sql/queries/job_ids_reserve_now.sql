-- job_ids_reserve_now: take n ids from the jobs' identity sequence, with the
-- database clock, for a COPY of new jobs (job_copy): the caller turns delay and
-- ttl (relative to the database clock) into absolute times from this now().
-- Parameters: n.
-- Returns: n rows of (id, now).
SELECT nextval(pg_get_serial_sequence('pgqueue.jobs', 'id')), now()
FROM generate_series(1, %(n)s)

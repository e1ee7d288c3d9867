-- job_ids_reserve: take n ids from the jobs' identity sequence, so a bulk insert
-- knows each job's id in input order without relying on RETURNING order.
-- In the same statement, the room of the jobs' queues (pgqueue.queue_rooms).
-- Parameters: n, queues (the distinct queues of the jobs; empty to skip).
-- Returns: one row (ids bigint[], then room_queues text[], max_depths int[],
--   warn_depths int[], depths bigint[] for each queue with a max_depth or a
--   warn_depth; NULL arrays when none has).
SELECT (SELECT array_agg(nextval('pgqueue.jobs_id_seq')) FROM generate_series(1, %(n)s)),
       r.*
FROM (SELECT array_agg(queue), array_agg(max_depth), array_agg(warn_depth), array_agg(depth)
      FROM pgqueue.queue_rooms(%(queues)s::text[])) r

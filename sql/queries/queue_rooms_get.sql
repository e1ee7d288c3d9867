-- queue_rooms_get: the room of some queues before a bulk insert whose ids were
-- reserved earlier (pgqueue.queue_rooms).
-- Parameters: queues (distinct queue names).
-- Returns: one row (room_queues text[], max_depths int[], warn_depths int[],
--   depths bigint[]) over the queues with a max_depth or a warn_depth; NULL
--   arrays when none has.
SELECT array_agg(queue), array_agg(max_depth), array_agg(warn_depth), array_agg(depth)
FROM pgqueue.queue_rooms(%(queues)s::text[])

-- worker_remove_dead: the reaper drops rows of workers whose heartbeat stalled.
-- Parameters: stall_seconds. Returns the removed ids.
DELETE FROM pgqueue.workers
WHERE heartbeat_at < now() - %(stall_seconds)s * interval '1 second'
RETURNING id

-- leader_try_acquire: take or renew the maintenance lease. Returns one row
-- (this worker's id) when this worker is the leader afterwards, else none.
-- Parameters: worker_id, ttl_seconds.
INSERT INTO pgqueue.leader AS l (name, worker_id, elected_at, expires_at)
VALUES ('maintenance', %(worker_id)s, now(), now() + %(ttl_seconds)s * interval '1 second')
ON CONFLICT (name) DO UPDATE
SET worker_id = EXCLUDED.worker_id,
    elected_at = CASE WHEN l.worker_id = EXCLUDED.worker_id THEN l.elected_at ELSE now() END,
    expires_at = EXCLUDED.expires_at
WHERE l.worker_id = EXCLUDED.worker_id OR l.expires_at < now()
RETURNING worker_id

-- leader_resign: give up the maintenance lease at clean shutdown, so another
-- worker takes over at its next try instead of after the lease expires.
-- Parameters: worker_id.
DELETE FROM pgqueue.leader WHERE name = 'maintenance' AND worker_id = %(worker_id)s

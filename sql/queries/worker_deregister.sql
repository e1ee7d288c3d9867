-- worker_deregister: remove a worker's row at clean shutdown.
-- Parameters: worker_id.
DELETE FROM pgqueue.workers WHERE id = %(worker_id)s

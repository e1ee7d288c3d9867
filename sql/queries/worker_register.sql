-- worker_register: announce a worker process (or refresh it).
-- Parameters: worker_id, host, pid, queues, tasks, concurrency.
INSERT INTO pgqueue.workers (id, host, pid, queues, tasks, concurrency)
VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(tasks)s, %(concurrency)s)
ON CONFLICT (id) DO UPDATE
SET heartbeat_at = now(), queues = EXCLUDED.queues, tasks = EXCLUDED.tasks,
    concurrency = EXCLUDED.concurrency

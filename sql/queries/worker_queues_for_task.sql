-- worker_queues_for_task: the queues from which some registered worker would claim a task.
-- Parameters: task (text). Returns one row: queues (text[], sorted, empty when no
--   registered worker has the task). A worker claims a job when the job's queue is
--   one of its queues and the job's task one of its tasks (as queue_stats.unclaimable).
-- Index: none; pgqueue.workers holds one row per running worker process.
SELECT COALESCE(array_agg(DISTINCT q.name ORDER BY q.name), '{}')::text[] AS queues
FROM pgqueue.workers w
CROSS JOIN LATERAL unnest(w.queues) AS q(name)
WHERE %(task)s::text = ANY (w.tasks)

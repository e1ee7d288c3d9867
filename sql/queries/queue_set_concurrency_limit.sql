-- queue_set_concurrency_limit: set or (NULL) remove a queue's global limit on
-- running jobs (pgqueue.set_concurrency_limit); creates the queue if unknown.
-- Parameters: queue, concurrency (int or NULL).
SELECT pgqueue.set_concurrency_limit(%(queue)s, %(concurrency)s)

-- queue_set_max_depth: set or (NULL) remove a queue's bound on live jobs
-- (pgqueue.set_max_depth); creates the queue if unknown.
-- Parameters: queue, depth (int or NULL).
SELECT pgqueue.set_max_depth(%(queue)s, %(depth)s)

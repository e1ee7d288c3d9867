-- queue_set_warn_depth: set or (NULL) remove a queue's soft bound on live jobs,
-- which only warns (pgqueue.set_warn_depth); creates the queue if unknown.
-- Parameters: queue, depth (int or NULL).
SELECT pgqueue.set_warn_depth(%(queue)s, %(depth)s)

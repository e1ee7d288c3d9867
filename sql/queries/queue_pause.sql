-- queue_pause: pause a queue (workers stop claiming from it at their next claim).
-- Parameters: queue. Returns true if it was not paused before.
SELECT pgqueue.pause_queue(%(queue)s)

-- queue_reset_retention: a queue's finished jobs of one final state follow the
-- workers' retention again (pgqueue.reset_retention).
-- Parameters: queue, state (succeeded, failed or cancelled). Returns how many
--   overrides were removed (0 or 1).
SELECT pgqueue.reset_retention(%(queue)s, %(state)s)

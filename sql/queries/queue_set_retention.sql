-- queue_set_retention: how long a queue keeps its finished jobs of one final
-- state (pgqueue.set_retention); creates the queue if unknown.
-- Parameters: queue, state (succeeded, failed or cancelled), keep_seconds
--   (float from 60 to 100 years, or NULL: keep for ever).
SELECT pgqueue.set_retention(%(queue)s, %(state)s,
                             %(keep_seconds)s::float8 * interval '1 second')

-- queue_set_rate_limit: set or (NULLs) remove a queue's rate limit: at most
-- `rate` claims in any window of `period_seconds` (pgqueue.set_rate_limit).
-- Parameters: queue, rate (int or NULL), period_seconds (float or NULL).
SELECT pgqueue.set_rate_limit(%(queue)s, %(rate)s, %(period_seconds)s)

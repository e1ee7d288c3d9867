-- queue_samples_take: one sample of every queue's depth by state and lag into
-- pgqueue.queue_samples, dropping samples older than keep_seconds
-- (pgqueue.sample_queues, migration 0015). Run by the leader's sampler.
-- Parameters: keep_seconds (float, > 0). Returns one row: queues sampled.
-- Cost: one pass of pgqueue.queue_stats_rows() (every live job is counted).
-- Locks: none beyond the rows written and removed.
SELECT pgqueue.sample_queues(%(keep_seconds)s::float8) AS sampled

-- dashboard_samples_latest: the newest sample of each queue's depth and lag, if
-- it is younger than max_age_seconds (none otherwise).
-- Parameters: max_age_seconds (float).
-- Returns: queue, sampled_at, ready, scheduled, running, blocked, unclaimable,
--   lag_seconds, age_seconds (of the sample).
-- Index: the primary key (sampled_at, queue): max() and the sample's rows.
SELECT s.queue, s.sampled_at, s.ready, s.scheduled, s.running, s.blocked, s.unclaimable,
       s.lag_seconds, extract(epoch FROM now() - s.sampled_at)::float8 AS age_seconds
FROM pgqueue.queue_samples s
WHERE s.sampled_at = (SELECT max(m.sampled_at) FROM pgqueue.queue_samples m)
  AND s.sampled_at > now() - %(max_age_seconds)s::float8 * interval '1 second'
ORDER BY s.queue

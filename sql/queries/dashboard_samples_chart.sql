-- dashboard_samples_chart: queue depth and lag over a range, per queue and
-- bucket, from the leader's samples: the mean of the bucket's samples' ready
-- jobs and depth (ready + scheduled + running + blocked), and their largest lag.
-- 60 s buckets (the hour chart) are read from the samples themselves, 600 and
-- 3600 s buckets from pgqueue.queue_sample_rollups.
-- Parameters: since (timestamptz), bucket_seconds (60, 600 or 3600), queue (text
--   or NULL).
-- Index: the samples' primary key (sampled_at, queue) bounds the range read; the
--   roll-ups' (width_seconds, bucket, queue).
SELECT s.queue,
       to_timestamp(floor(extract(epoch FROM s.sampled_at) / 60) * 60) AS bucket,
       avg(s.ready)::float8 AS ready,
       avg(s.ready + s.scheduled + s.running + s.blocked)::float8 AS depth,
       max(s.lag_seconds)::float8 AS lag_seconds
FROM pgqueue.queue_samples s
WHERE %(bucket_seconds)s::integer = 60
  AND s.sampled_at >= %(since)s::timestamptz
  AND (%(queue)s::text IS NULL OR s.queue = %(queue)s::text)
GROUP BY 1, 2
UNION ALL
SELECT r.queue, r.bucket, (r.ready_sum / r.samples)::float8, (r.depth_sum / r.samples)::float8,
       r.lag_max::float8
FROM pgqueue.queue_sample_rollups r
WHERE r.width_seconds = %(bucket_seconds)s::integer
  AND r.bucket >= %(since)s::timestamptz
  AND (%(queue)s::text IS NULL OR r.queue = %(queue)s::text)
ORDER BY 1, 2

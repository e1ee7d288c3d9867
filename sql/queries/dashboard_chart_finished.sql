-- dashboard_chart_finished: finished jobs per queue and time bucket over a range,
-- with the run-duration histogram (bins of pgqueue.duration_bounds()) of the jobs
-- that started. Buckets before the roll-up watermark come from
-- pgqueue.finished_rollups (written by the leader), the rest from the raw rows of
-- pgqueue.finished_jobs from the watermark on: exact to the last second, and a
-- bucket may come as two rows (one of each), which the reader adds up.
-- Parameters: since (timestamptz, a multiple of bucket_seconds), bucket_seconds (60, 600 or 3600: a roll-up
--   width), queue (text or NULL), rolled_until (the watermark, from
--   rollup_state_get, or NULL when nothing is rolled up: a constant, so that the
--   planner sees how short the raw tail is).
-- Returns: queue, bucket, succeeded, failed, cancelled, durations (bigint[22]),
--   duration_sum (seconds).
-- Index: the roll-ups' primary key (width_seconds, bucket, queue) for the range;
--   the BRIN index on finished_at for the raw tail (since the watermark, about
--   a minute or two while a leader runs; everything in range when none ever ran).
WITH raw AS (
    SELECT h.queue::text AS queue,
           to_timestamp(floor(extract(epoch FROM h.finished_at) / %(bucket_seconds)s::integer)
                        * %(bucket_seconds)s::integer) AS bucket,
           h.state,
           width_bucket(extract(epoch FROM h.finished_at - h.started_at)::float8,
                        pgqueue.duration_bounds()) AS bin,
           count(*) AS n,
           sum(extract(epoch FROM h.finished_at - h.started_at)::float8) AS seconds
    FROM pgqueue.finished_jobs h
    WHERE h.finished_at >= GREATEST(COALESCE(%(rolled_until)s::timestamptz, '-infinity'),
                                    %(since)s::timestamptz)
      AND (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
    GROUP BY 1, 2, 3, 4
)
SELECT r.queue, r.bucket, r.succeeded, r.failed, r.cancelled, r.durations, r.duration_sum
FROM pgqueue.finished_rollups r
WHERE r.width_seconds = %(bucket_seconds)s::integer
  AND r.bucket >= %(since)s::timestamptz
  AND r.bucket < COALESCE(%(rolled_until)s::timestamptz, '-infinity')
  AND (%(queue)s::text IS NULL OR r.queue = %(queue)s::text)
UNION ALL
SELECT w.queue, w.bucket,
       COALESCE(sum(w.n) FILTER (WHERE w.state = 'succeeded'), 0)::bigint,
       COALESCE(sum(w.n) FILTER (WHERE w.state = 'failed'), 0)::bigint,
       COALESCE(sum(w.n) FILTER (WHERE w.state = 'cancelled'), 0)::bigint,
       pgqueue.duration_histogram(array_agg(w.bin), array_agg(w.n)),
       COALESCE(sum(w.seconds), 0)
FROM raw w
GROUP BY 1, 2
ORDER BY 1, 2

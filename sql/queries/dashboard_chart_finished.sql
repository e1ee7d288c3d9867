-- dashboard_chart_finished: finished jobs per queue and time bucket over a range,
-- with run-duration percentiles (started_at to finished_at, in seconds).
-- Parameters: since (timestamptz), bucket_seconds (float), queue (text or NULL).
-- Index: the BRIN index on finished_at bounds the range read.
SELECT h.queue,
       to_timestamp(floor(extract(epoch FROM h.finished_at) / %(bucket_seconds)s::float8)
                    * %(bucket_seconds)s::float8) AS bucket,
       count(*) FILTER (WHERE h.state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE h.state = 'failed') AS failed,
       count(*) FILTER (WHERE h.state = 'cancelled') AS cancelled,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM h.finished_at - h.started_at))
           FILTER (WHERE h.started_at IS NOT NULL) AS duration_percentiles
FROM pgqueue.finished_jobs h
WHERE h.finished_at >= %(since)s::timestamptz
  AND (%(queue)s::text IS NULL OR h.queue = %(queue)s::text)
GROUP BY 1, 2
ORDER BY 1, 2

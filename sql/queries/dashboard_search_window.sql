-- dashboard_search_window: where a search of history without a time range starts:
-- at since (now less 24 hours), or later, at the start of the newest minute
-- bucket from which on about max_rows jobs finished, by the roll-ups (the raw
-- tail after the watermark is not counted: a minute or two). NULL when the
-- roll-ups hold less than max_rows since since (then since applies).
-- Parameters: since (timestamptz), max_rows (bigint).
-- Index: the roll-ups' primary key (width_seconds, bucket, queue): a day of
--   minute buckets.
SELECT max(b.bucket) AS start
FROM (SELECT r.bucket,
             sum(sum(r.succeeded + r.failed + r.cancelled)) OVER (ORDER BY r.bucket DESC)
                 AS newer
      FROM pgqueue.finished_rollups r
      WHERE r.width_seconds = 60 AND r.bucket >= %(since)s::timestamptz
      GROUP BY r.bucket) b
WHERE b.newer >= %(max_rows)s::bigint

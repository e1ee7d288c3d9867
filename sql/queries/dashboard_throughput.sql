-- dashboard_throughput: finished jobs per queue and minute over the last hour,
-- for the overview's small charts.
-- Parameters: none. Reads pgqueue.recent_throughput (BRIN index on finished_at).
SELECT queue, minute, succeeded, failed, cancelled
FROM pgqueue.recent_throughput
ORDER BY queue, minute

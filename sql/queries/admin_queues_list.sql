-- admin_queues_list: the pgqueue.queue_stats view, one row per queue, by name.
-- Parameters: none. Every column of the view is returned as it is, so columns
--   added by later migrations (such as `paused`) appear without a change here.
SELECT * FROM pgqueue.queue_stats ORDER BY queue

-- queue_stats_list: the pgqueue.queue_stats view, one row per queue, by name.
-- Parameters: none. Reads the view's columns as they are (see 0002_views.sql).
SELECT * FROM pgqueue.queue_stats ORDER BY queue

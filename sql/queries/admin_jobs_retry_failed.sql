-- admin_jobs_retry_failed: retry every failed job of one queue, or of all queues.
-- Parameters: queue (text or NULL for all). Returns one row: how many moved.
-- Index: finished_jobs_queue_state_finished_idx for the failed rows of the queue.
SELECT pgqueue.retry_failed(%(queue)s::text) AS retried

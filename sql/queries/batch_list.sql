-- batch_list: the newest batches, newest first, as batch_get's rows.
-- Parameters: limit; before_id (NULL for the first page).
-- Index: job_batches' primary key, backwards.
SELECT b.id, b.name, b.total, b.succeeded, b.failed, b.cancelled, b.pending, b.running,
       b.created_at, b.started_at, b.sealed_at, b.finished_at, b.callback_task,
       b.callback_job_id
FROM pgqueue.batches b
WHERE %(before_id)s::bigint IS NULL OR b.id < %(before_id)s::bigint
ORDER BY b.id DESC
LIMIT %(limit)s

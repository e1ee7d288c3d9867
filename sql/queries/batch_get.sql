-- batch_get: one row of the pgqueue.batches view (counts by outcome, pending,
-- running, times, callback). Parameters: batch_id. No row for an unknown id.
-- Index: job_batches' primary key; jobs_batch_idx and finished_jobs_batch_idx
--   for the counts.
SELECT b.id, b.name, b.total, b.succeeded, b.failed, b.cancelled, b.pending, b.running,
       b.created_at, b.started_at, b.sealed_at, b.finished_at, b.callback_task,
       b.callback_job_id
FROM pgqueue.batches b
WHERE b.id = %(batch_id)s

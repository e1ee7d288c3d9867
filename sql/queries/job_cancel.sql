-- job_cancel: cancel one job through pgqueue.cancel (see 0003_controls.sql).
-- Returns 'cancelled', 'requested', 'finished' or 'not_found'.
-- Parameters: job_id, reason. Locks the live row while deciding.
SELECT pgqueue.cancel(%(job_id)s, %(reason)s)

-- job_finished_listen: subscribe to finished-job announcements, for result
-- waiters. pgqueue_finished carries the comma-separated ids of jobs that just
-- finished ('*' when too many for one payload), or 'batch:<id>' when a batch
-- finished.
LISTEN pgqueue_finished

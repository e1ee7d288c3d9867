-- job_finished_listen: subscribe to finished-job announcements, for result
-- waiters. pgqueue_finished carries the comma-separated ids of jobs that just
-- finished ('*' when too many for one payload), or 'batch:<id>' when a batch
-- finished. Outcome statements announce only while some session is marked as
-- waiting (pgqueue.result_wait_begin, migration 0022), so this session marks
-- itself, after its LISTEN has taken effect.
LISTEN pgqueue_finished;
SELECT pgqueue.result_wait_begin()

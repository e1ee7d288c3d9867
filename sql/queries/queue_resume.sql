-- queue_resume: resume a queue and wake its workers.
-- Parameters: queue. Returns true if it was paused.
SELECT pgqueue.resume_queue(%(queue)s)

-- listener_listen: subscribe to wake-ups. Channel pgqueue_jobs carries the
-- queue name of newly queued (or handed back, or reclaimed) jobs.
LISTEN pgqueue_jobs

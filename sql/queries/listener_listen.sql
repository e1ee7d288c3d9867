-- listener_listen: subscribe to wake-ups and control messages.
-- pgqueue_jobs carries the queue name of newly queued (or handed back, or
-- reclaimed) jobs; pgqueue_control carries 'cancel:<id>', 'pause:<queue>' and
-- 'resume:<queue>'.
LISTEN pgqueue_jobs;
LISTEN pgqueue_control

-- periodic_list: every recorded schedule with its last and next tick.
SELECT name, cron, task::text, queue::text, on_missed, last_tick, next_tick, last_job_id
FROM pgqueue.periodic
ORDER BY name

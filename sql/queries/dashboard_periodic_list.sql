-- dashboard_periodic_list: every recorded periodic schedule with its last and next
-- tick and the state of the last job it enqueued.
-- Parameters: none. Index: the primary keys of pgqueue.jobs and finished_jobs.
SELECT p.name, p.cron, p.task::text AS task, p.queue::text AS queue, p.args, p.on_missed,
       p.last_tick, p.next_tick, p.last_job_id,
       COALESCE((SELECT j.state::text FROM pgqueue.jobs j WHERE j.id = p.last_job_id),
                (SELECT h.state::text FROM pgqueue.finished_jobs h
                 WHERE h.id = p.last_job_id)) AS last_job_state
FROM pgqueue.periodic p
ORDER BY p.name

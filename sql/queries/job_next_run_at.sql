-- job_next_run_at: seconds until the earliest queued job of these queues and
-- tasks is due (by the database clock; <= 0 means due now), so an idle worker
-- sleeps exactly until then. NULL when nothing is queued.
-- Parameters: queues (text[]), tasks (text[]).
SELECT extract(epoch FROM min(j.run_at) - now())::float8
FROM pgqueue.jobs j
WHERE j.state = 'queued'
  AND j.queue = ANY (%(queues)s::text[])
  AND j.task = ANY (%(tasks)s::text[])

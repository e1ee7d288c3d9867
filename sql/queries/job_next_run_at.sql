-- job_next_run_at: seconds until the earliest claimable queued job of these
-- queues and tasks is due (by the database clock; <= 0 means one is due now
-- but was not claimed, e.g. locked by another worker's claim at that moment),
-- so an idle worker sleeps exactly until then. NULL when nothing is queued.
-- Same filters as job_claim: paused queues and expired jobs do not count.
-- Parameters: queues (text[]), tasks (text[]).
SELECT extract(epoch FROM min(j.run_at) - now())::float8
FROM pgqueue.jobs j
LEFT JOIN pgqueue.queues pq ON pq.name = j.queue
WHERE j.state = 'queued'
  AND j.queue = ANY (%(queues)s::text[])
  AND j.task = ANY (%(tasks)s::text[])
  AND (j.expires_at IS NULL OR j.expires_at > now())
  AND pq.paused IS NOT TRUE

-- job_next_run_at: seconds until this worker should look for jobs again
-- (pgqueue.next_claim_in): the earliest run_at of a claimable job, or when a
-- rate-limited queue's window next has room. <= 0 means one is due now but was
-- not claimed (locked by another claim at that moment, or held back by a
-- per-key cap). NULL when nothing is waiting; a queue at its concurrency limit
-- is woken by NOTIFY when one of its jobs finishes.
-- Parameters: queues (text[]), tasks (text[]).
SELECT pgqueue.next_claim_in(%(queues)s::text[], %(tasks)s::text[])

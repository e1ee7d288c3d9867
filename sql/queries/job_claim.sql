-- job_claim: claim up to `limit` ready jobs for one worker, through the SQL
-- function pgqueue.claim_v2 (migration 0011: pgqueue.claim of 0005, last
-- defined in 0008, plus the claim token; since 0012 its candidates are
-- pgqueue.claim_candidates, inlined), which applies queue limits, rate
-- limits, per-key caps, pauses, dependencies and expiry in one transaction.
-- Parameters: queues (text[]), slots (int[], room per queue), tasks (text[]),
--   limit, worker_id, key_tasks (text[]), key_caps (int[]), async_commit (bool:
--   the worker was idle; commit without waiting for the WAL flush).
-- Returns the claimed jobs in claim order (priority, run_at, id), each with the
--   claim's token (claim_token, the last column): outcomes are fenced on it.
SELECT * FROM pgqueue.claim_v2(%(queues)s::text[], %(slots)s::int[], %(tasks)s::text[],
                               %(limit)s, %(worker_id)s::uuid, %(key_tasks)s::text[],
                               %(key_caps)s::int[], %(async_commit)s)

-- job_claim: claim up to `limit` ready jobs for one worker, through the SQL
-- function pgqueue.claim_v3 (migration 0015: claim_v2 of 0011/0012 with turns
-- per queue; its candidates are pgqueue.claim_candidates, inlined), which
-- applies queue limits, rate limits, per-key caps, pauses, dependencies and
-- expiry in one transaction.
-- Parameters: queues (text[]), slots (int[], room per queue), bases and
--   strides (float8[]: the turn of a queue's k-th candidate is
--   bases[i] + k * strides[i], lowest first; NULL: priority, run_at and id
--   across queues), fair (bool[]: the queues whose keys take turns) and
--   cursors (text[]: each fair queue's last key served; NULL: from the first),
--   tasks (text[]), limit, worker_id, key_tasks (text[]),
--   key_caps (int[]), async_commit (bool: the worker was idle; commit without
--   waiting for the WAL flush).
-- Index: jobs_claim_idx (queue, priority DESC, run_at, id), one range per queue,
--   at most slots[i] rows each; a fair queue's round also descends jobs_fair_idx
--   (queue, concurrency_key, ...) once per key, at most slots[i] keys.
-- Locks: FOR UPDATE SKIP LOCKED on the candidates; the rows of limited queues
--   and an advisory lock per capped key (see claim_v3).
-- Returns the claimed jobs in claim order (turn, then priority, run_at, id),
--   each with the claim's token (claim_token): outcomes are fenced on it; and
--   its concurrency_key (the last column: a fair queue's next cursor).
SELECT * FROM pgqueue.claim_v3(%(queues)s::text[], %(slots)s::int[], %(bases)s::float8[],
                               %(strides)s::float8[], %(fair)s::bool[], %(cursors)s::text[],
                               %(tasks)s::text[], %(limit)s,
                               %(worker_id)s::uuid, %(key_tasks)s::text[],
                               %(key_caps)s::int[], %(async_commit)s)

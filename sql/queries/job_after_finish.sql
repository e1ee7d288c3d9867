-- job_after_finish: once the final outcomes of these jobs have committed,
-- settle their blocked dependents (claimable, or cancelled when a dependency
-- failed) and finish their batches (callback enqueued once).
-- Parameters: ids (bigint[]).
SELECT pgqueue.after_finish(%(ids)s::bigint[])

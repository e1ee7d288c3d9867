-- job_settle_pending: the leader's safety net for pgqueue.after_finish: blocked
-- jobs none of whose dependencies is live, and sealed batches with no live job,
-- are settled (a worker that died between writing outcomes and settling leaves
-- such work behind).
SELECT pgqueue.settle_pending(1000)

-- batch_seal: no more jobs join the batch; it finishes (callback enqueued once)
-- as soon as none of its jobs is live, at once if none is.
-- Parameters: batch_id. Returns false if the batch was sealed already or is unknown.
-- Locks: the batch's row in pgqueue.job_batches until the transaction ends.
SELECT pgqueue.seal_batch(%(batch_id)s)

-- batch_create: open a new batch through pgqueue.create_batch (SECURITY
-- DEFINER, so a producer role may call it). Returns the batch id.
-- Parameters: name, callback_task, callback_args (JSON text), callback_queue;
--   each may be NULL (no callback without callback_task).
SELECT pgqueue.create_batch(
    name => %(name)s,
    callback_task => %(callback_task)s,
    callback_args => %(callback_args)s::jsonb,
    callback_queue => %(callback_queue)s
)

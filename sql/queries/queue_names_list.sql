-- queue_names_list: the name of every queue a job was ever enqueued to (or
-- that was paused or limited), in name order.
-- Parameters: none.
SELECT q.name::text FROM pgqueue.queues q ORDER BY q.name

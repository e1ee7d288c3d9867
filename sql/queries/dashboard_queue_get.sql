-- dashboard_queue_get: one queue's row of pgqueue.queue_stats with its pause time.
-- Parameters: queue. No row for an unknown queue.
-- Reads: queue_stats_rows() for every queue (it has no per-queue form), then keeps one.
SELECT s.*, q.paused_at, q.created_at
FROM pgqueue.queue_stats s
JOIN pgqueue.queues q ON q.name = s.queue
WHERE s.queue = %(queue)s::text

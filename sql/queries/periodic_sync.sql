-- periodic_sync: the leader records a schedule from its registry. A new
-- schedule starts at `now` (no back-fill); a changed one keeps its last tick.
-- Parameters: name, cron, task, queue, args (JSON text), on_missed, next_tick.
INSERT INTO pgqueue.periodic AS p (name, cron, task, queue, args, on_missed, last_tick, next_tick)
VALUES (%(name)s, %(cron)s, %(task)s, %(queue)s, %(args)s::jsonb, %(on_missed)s, now(),
        %(next_tick)s)
ON CONFLICT (name) DO UPDATE
SET cron = EXCLUDED.cron, task = EXCLUDED.task, queue = EXCLUDED.queue, args = EXCLUDED.args,
    on_missed = EXCLUDED.on_missed, updated_at = now()
RETURNING last_tick, now()

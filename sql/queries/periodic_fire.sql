-- periodic_fire: handle one tick of a schedule exactly once (see
-- pgqueue.periodic_fire in 0003_controls.sql). Returns the new job id or NULL.
-- Parameters: name, tick, next_tick, fire (false: skip the tick, just advance).
SELECT pgqueue.periodic_fire(%(name)s, %(tick)s, %(next_tick)s, %(fire)s)

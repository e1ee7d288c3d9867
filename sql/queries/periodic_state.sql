-- periodic_state: last handled tick of each schedule, and the database clock.
SELECT name, last_tick, now() FROM pgqueue.periodic

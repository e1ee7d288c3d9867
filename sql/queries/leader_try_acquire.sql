-- leader_try_acquire: become the maintenance leader (reaper) if nobody is.
-- A session-level advisory lock: held until this connection closes, so a dead
-- leader's lock is released by PostgreSQL itself. Key: ASCII 'pgql'.
SELECT pg_try_advisory_lock(1885827436)

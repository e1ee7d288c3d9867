-- connection_check: a cheap round trip proving the session is alive.
SELECT 1

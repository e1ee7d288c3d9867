-- session_setup: settings of a worker's own sessions (claim, outcomes,
-- maintenance), run once per connection.
-- plan_cache_mode: the worker's statements are prepared (psycopg prepares a
--   statement from its sixth use) and take array parameters whose contents
--   never change the best plan: index look-ups by id. With the default
--   ("auto") PostgreSQL planned job_complete_many afresh on every call; a
--   generic plan wrote 50 outcomes in 1.14 ms instead of 1.65 ms.
SET plan_cache_mode = force_generic_plan

-- clock_now: the database clock (the transaction's now()), for a COPY of new
-- jobs whose ids were reserved earlier. Returns one row of (NULL, now), the
-- shape of job_ids_reserve_now.
SELECT NULL::bigint, now()

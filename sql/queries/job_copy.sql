-- job_copy: bulk insert of new jobs without unique keys, as a binary COPY.
-- The row is the one pgqueue.enqueue() and job_insert_many build: the columns
-- not listed take their defaults (state queued, attempt 0, errors [], created_at
-- now()), and they are all columns a producer role may insert (README, "Least
-- privilege"); ids come from job_ids_reserve_now, run_at and expires_at are
-- computed from its now(), which is also created_at's unless the connection is
-- in autocommit (created_at is then the COPY's own now(), a moment later).
-- Columns, in order: id bigint, queue text, task text, args jsonb,
--   priority int, run_at timestamptz, max_attempts int, trace_context text,
--   expires_at timestamptz, depends_on bigint[], blocked bool (true when
--   depends_on is set, else NULL), concurrency_key text, batch_id bigint,
--   tags text[] ({} for none), meta jsonb ({} for none).
-- Fires the statement trigger once (COPY is one statement): one NOTIFY per queue.
COPY pgqueue.jobs (id, queue, task, args, priority, run_at, max_attempts, trace_context,
                   expires_at, depends_on, blocked, concurrency_key, batch_id, tags, meta)
FROM STDIN (FORMAT BINARY)

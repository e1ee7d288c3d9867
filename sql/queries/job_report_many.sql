-- job_report_many: write what running attempts reported (progress, meta) while
-- they run, for many jobs in one statement (pgqueue/worker/reporter.py).
-- FENCED as job_complete_many: a report applies only while its job is still
-- `running` under this worker and the claim that started the attempt; a stale
-- attempt (its job reclaimed, or already finished) changes nothing.
-- `progress` replaces the job's progress; `meta` (every key the attempt set so
-- far, latest values) is merged into the job's meta (jsonb ||), so writing it
-- again changes nothing.
-- Parameters, arrays of equal length: ids, tokens (claim tokens), progress
--   (jsonb object or NULL: unchanged), meta (jsonb object or NULL: unchanged);
--   and worker_id.
-- Returns: the ids written.
-- Index: the primary key (each report finds its row by id, in ascending ids).
-- Locks: the rows written, briefly (as any UPDATE). Each row written leaves a
--   dead version for vacuum (mostly not HOT updates: 19 per cent were in
--   benchmarks/reports.py), so the reporter writes each attempt at most once per
--   interval.
UPDATE pgqueue.jobs j
SET progress = COALESCE(r.progress, j.progress),
    meta = CASE WHEN r.meta IS NULL THEN j.meta ELSE j.meta || r.meta END
FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(progress)s::jsonb[],
            %(meta)s::jsonb[]) AS r(id, token, progress, meta)
WHERE j.id = r.id AND j.claim_token = r.token
  AND j.worker_id = %(worker_id)s AND (j.state = 'running') IS TRUE
RETURNING j.id

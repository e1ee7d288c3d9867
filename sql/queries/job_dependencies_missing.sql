-- job_dependencies_missing: before new jobs are inserted, the first of their
-- dependencies that is neither a job (live or finished) nor one of the ids
-- reserved for the same call (pgqueue.missing_dependency). NULL: all exist.
-- Parameters: deps (bigint[]), own_ids (bigint[]).
SELECT pgqueue.missing_dependency(%(deps)s::bigint[], %(own_ids)s::bigint[])

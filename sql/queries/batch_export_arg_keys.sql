-- batch_export_arg_keys: the top-level args keys that hold a scalar (string,
-- number, boolean, null) in at least one job of the batch, by name: the args
-- columns of a CSV export.
-- Parameters: batch_id, max_keys.
SELECT DISTINCT a.key
FROM (
    SELECT h.args FROM pgqueue.finished_jobs h WHERE h.batch_id = %(batch_id)s
    UNION ALL
    SELECT j.args FROM pgqueue.jobs j WHERE j.batch_id = %(batch_id)s
) x
CROSS JOIN LATERAL jsonb_each(x.args) AS a(key, value)
WHERE jsonb_typeof(a.value) NOT IN ('object', 'array')
ORDER BY a.key
LIMIT %(max_keys)s

-- dashboard_bulk_delete: delete one bounded batch of finished jobs from history,
-- as prune does; live jobs are never deleted (cancel them first).
-- Parameters: ids (bigint[]). Returns the deleted ids. Index: the primary key.
DELETE FROM pgqueue.finished_jobs h
WHERE h.id = ANY (%(ids)s::bigint[])
RETURNING h.id

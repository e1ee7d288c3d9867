-- dashboard_jobs_newest_id: the largest id of a live job (NULL when there is none),
-- from which a search of live jobs by args or error text counts back.
-- Parameters: none. Index: the primary key's last entry.
SELECT max(j.id) AS newest FROM pgqueue.jobs j

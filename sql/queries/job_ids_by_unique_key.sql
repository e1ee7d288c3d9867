-- job_ids_by_unique_key: the live jobs holding these unique keys.
-- Parameters: unique_keys (text[]). Index: jobs_unique_key_idx.
SELECT unique_key, id FROM pgqueue.jobs WHERE unique_key = ANY(%(unique_keys)s::text[])

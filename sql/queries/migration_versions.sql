-- migration_versions: versions applied so far, or nothing before the first migration.
SELECT version FROM pgqueue.migrations ORDER BY version

-- migration_table_exists: whether pgqueue has ever been migrated in this database.
SELECT to_regclass('pgqueue.migrations') IS NOT NULL

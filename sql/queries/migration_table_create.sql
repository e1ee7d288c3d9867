-- migration_table_create: the version table, created before the first migration.
-- Run under migration_lock, so two migrators never race on it.
CREATE SCHEMA IF NOT EXISTS pgqueue;
CREATE TABLE IF NOT EXISTS pgqueue.migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- migration_record: mark one migration applied, in the transaction that applied it.
-- Parameters: version, name.
INSERT INTO pgqueue.migrations (version, name) VALUES (%(version)s, %(name)s)

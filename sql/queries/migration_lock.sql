-- migration_lock: serialise migrators. Held until the end of the transaction.
-- Key: the ASCII of 'pgqu' as one bigint; no other pgqueue lock uses it.
SELECT pg_advisory_xact_lock(1885827445)

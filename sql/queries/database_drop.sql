-- database_drop: drop a database made by database_create, ending the sessions
-- still connected to it.
-- Placeholder: name (an identifier, composed with psycopg.sql).
DROP DATABASE IF EXISTS {name} WITH (FORCE)

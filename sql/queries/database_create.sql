-- database_create: create an empty database, for the pytest plugin of
-- pgqueue.testing (one database per test session).
-- Placeholder: name (an identifier, composed with psycopg.sql).
CREATE DATABASE {name}

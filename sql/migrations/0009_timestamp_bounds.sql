-- 0009_timestamp_bounds: every timestamp in pgqueue's tables lies from
-- 1970-01-01 00:00 UTC up to (not including) 9999-12-31 00:00 UTC.
--
-- PostgreSQL takes 'infinity', '-infinity', BC dates and years up to 294276 in a
-- timestamptz; Python's datetime stops at years 1..9999, and arithmetic on the
-- infinities raises. One such value, from pgqueue.enqueue(run_at => '-infinity')
-- or a raw INSERT, broke queue_stats ("cannot subtract infinite timestamps"),
-- every read of pgqueue.all_jobs through psycopg, `pgqueue status`, the
-- dashboard and the worker's next-due look-up. The upper bound stops a day short
-- of year 10000 so that a stored value still reads as a Python datetime in any
-- session time zone (offsets are under a day).
--
-- pgqueue.timestamp_in_bounds holds the range once; each timestamptz column of
-- each pgqueue table (but pgqueue.migrations, which only the migrator writes)
-- gets a CHECK constraint named <table>_<column>_between_1970_and_9999, so the
-- error a refused row raises names its column and the range. The bounds are
-- written in the function's body text, so the schema dump does not depend on the
-- server's time zone. Columns added by later migrations use the same function.
--
-- Rows already stored out of range are clamped to the nearest bound before the
-- constraints are validated, which keeps what they meant: a run_at of
-- '-infinity' (or any date before 1970) becomes 1970-01-01 00:00 UTC, still due
-- at once and first in line; 'infinity' (or a year past 9999) becomes
-- 9999-12-30 23:59:59.999999 UTC, still never. Cost: one scan of each table for
-- the clamp and one for all of its constraints together, under the migration's
-- lock; pgqueue.finished_jobs is the large one.

CREATE FUNCTION pgqueue.timestamp_in_bounds(at timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
SELECT at >= '1970-01-01 00:00:00+00'::timestamptz
   AND at < '9999-12-31 00:00:00+00'::timestamptz
$$;
COMMENT ON FUNCTION pgqueue.timestamp_in_bounds(timestamptz) IS
    'true when a stored pgqueue timestamp is from 1970-01-01 up to (not including) '
    '9999-12-31 UTC; null for null';

DO $$
DECLARE
    t record;
    sets text;
    outside text;
    checks text;
BEGIN
    FOR t IN
        SELECT c.relname::text AS tbl, array_agg(a.attname::text ORDER BY a.attnum) AS cols
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
        WHERE n.nspname = 'pgqueue' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'migrations'
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid = 'pg_catalog.timestamptz'::pg_catalog.regtype
        GROUP BY c.relname
        ORDER BY c.relname
    LOOP
        SELECT string_agg(format('%1$I = CASE WHEN %1$I < %2$L::timestamptz THEN %2$L::timestamptz '
                                 'WHEN %1$I >= %3$L::timestamptz THEN %4$L::timestamptz '
                                 'ELSE %1$I END',
                                 col, '1970-01-01 00:00:00+00', '9999-12-31 00:00:00+00',
                                 '9999-12-30 23:59:59.999999+00'), ', '),
               string_agg(format('NOT pgqueue.timestamp_in_bounds(%I)', col), ' OR '),
               string_agg(format('ADD CONSTRAINT %I CHECK (pgqueue.timestamp_in_bounds(%I))',
                                 t.tbl || '_' || col || '_between_1970_and_9999', col), ', ')
        INTO sets, outside, checks
        FROM unnest(t.cols) AS col;
        EXECUTE format('UPDATE pgqueue.%I SET %s WHERE %s', t.tbl, sets, outside);
        EXECUTE format('ALTER TABLE pgqueue.%I %s', t.tbl, checks);
    END LOOP;
END
$$;

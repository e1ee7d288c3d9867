-- 0018_dashboard_summaries: what the dashboard reads instead of counting every
-- live job and every finished row of a chart's range. Both tables are written
-- by the leader's maintenance (README: "Web dashboard"); nothing is added to
-- enqueue, claim or completion. A counter row per queue, kept as jobs move,
-- would make every producer and completer of a queue wait for the others'
-- commits (see 0007_failed_counts.sql and 0013_backpressure.sql).
--
-- - pgqueue.finished_rollups: finished jobs per queue and time bucket, at three
--   widths (1 minute, 10 minutes, 1 hour: the buckets of the hour, day and week
--   charts), with a histogram of run durations. pgqueue.roll_up_finished adds
--   the rows of pgqueue.finished_jobs from a watermark
--   (pgqueue.rollup_state.rolled_until) on, up to a bounded number of minutes
--   per call, and moves the watermark in the same transaction. A reader adds
--   the roll-ups before the watermark and the raw rows from it on, so a chart
--   is exact up to its last second whatever the leader does.
-- - pgqueue.queue_samples: each queue's depth by state and lag, as
--   pgqueue.queue_stats counts them, taken every few seconds
--   (pgqueue.sample_queues), for the depth and lag charts and for the counts
--   of the overview (shown with the sample's age); pgqueue.queue_sample_rollups
--   sums them per 10 minutes and per hour as they are taken, for the day and
--   week charts. pgqueue.queue_stats itself
--   stays exact: it still counts.

-- The upper bounds, in seconds, of the run-duration histogram's bins: 1, 2, 5
-- per decade from 1 ms to 1 h. A duration d falls in bin width_bucket(d,
-- bounds) (0 below 1 ms, 21 from 1 h on): 22 bins.
CREATE FUNCTION pgqueue.duration_bounds() RETURNS double precision[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1,2,5,10,20,50,100,200,500,1000,2000,3600}'::double precision[]
$$;

COMMENT ON FUNCTION pgqueue.duration_bounds()
IS 'upper bounds (seconds) of the run-duration histogram of pgqueue.finished_rollups: 22 bins';

-- A histogram of 22 bins from (bin, count) pairs; a bin given twice adds up.
CREATE FUNCTION pgqueue.duration_histogram(bins integer[], counts bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(COALESCE(s.n, 0)::bigint ORDER BY i.i)
    FROM generate_series(0, 21) AS i(i)
    LEFT JOIN (SELECT u.b, sum(u.c) AS n FROM unnest(bins, counts) AS u(b, c)
               WHERE u.b IS NOT NULL GROUP BY u.b) s ON s.b = i.i
$$;

-- Two histograms added bin by bin.
CREATE FUNCTION pgqueue.histogram_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(u.x + u.y ORDER BY u.i)
    FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i)
$$;

-- Finished jobs per (width, bucket, queue). durations counts the jobs that
-- started (started_at set) by run duration, finished_at - started_at, in the
-- bins of pgqueue.duration_bounds(); duration_sum is their sum in seconds.
-- Counts are of finishes: rows pruned from history or retried by hand later
-- stay counted.
CREATE TABLE pgqueue.finished_rollups (
    width_seconds integer NOT NULL
        CONSTRAINT finished_rollups_width CHECK (width_seconds IN (60, 600, 3600)),
    bucket timestamptz NOT NULL,
    queue text NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    cancelled bigint NOT NULL,
    durations bigint[] NOT NULL
        CONSTRAINT finished_rollups_bins CHECK (cardinality(durations) = 22),
    duration_sum double precision NOT NULL,
    PRIMARY KEY (width_seconds, bucket, queue)
);

-- One row: every row of pgqueue.finished_jobs whose finished_at is before
-- rolled_until is counted in pgqueue.finished_rollups (NULL: nothing yet).
CREATE TABLE pgqueue.rollup_state (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT rollup_state_one CHECK (singleton),
    rolled_until timestamptz,
    rolled_at timestamptz
);
INSERT INTO pgqueue.rollup_state (singleton) VALUES (true);

-- Add the finished jobs of at most max_minutes whole minutes from the
-- watermark on, and move it. The end is the earliest of: the watermark plus
-- max_minutes; now() less settle_seconds, to the minute; and the start of the
-- oldest open transaction of this database that has written anything (as far
-- as this role may see pg_stat_activity). A finished row's finished_at is its
-- transaction's start (now()), so rows older than that end that are still
-- uncommitted could only come from a transaction that had not written yet
-- and stays open past settle_seconds: a finish in such a transaction is in
-- history but not in the roll-ups.
--
-- The first call starts at the minute of the oldest finished row (one scan of
-- history), or at the end when history is empty. The state row is locked
-- FOR UPDATE first: two leaders (or a leader and a caller by hand) take turns,
-- and the second starts where the first stopped, so no row is counted twice.
-- Returns where this call started and ended and how many rows it added.
CREATE FUNCTION pgqueue.roll_up_finished(max_minutes integer,
                                         settle_seconds double precision DEFAULT 60)
RETURNS TABLE(rolled_from timestamptz, rolled_until timestamptz, jobs bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    start_at timestamptz;
    end_at timestamptz;
    oldest_writer timestamptz;
    added bigint := 0;
BEGIN
    IF max_minutes IS NULL OR max_minutes < 1 THEN
        RAISE EXCEPTION 'pgqueue: max_minutes must be at least 1, got %', max_minutes
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF settle_seconds IS NULL OR settle_seconds < 0 THEN
        RAISE EXCEPTION 'pgqueue: settle_seconds must be 0 or more, got %', settle_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The row again if it was removed (TRUNCATE): else the watermark would be lost.
    INSERT INTO pgqueue.rollup_state (singleton) VALUES (true) ON CONFLICT DO NOTHING;
    SELECT s.rolled_until INTO start_at FROM pgqueue.rollup_state s FOR UPDATE;
    SELECT min(a.xact_start) INTO oldest_writer FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_xid IS NOT NULL
      AND a.pid <> pg_backend_pid();
    end_at := date_trunc('minute', LEAST(now() - settle_seconds * interval '1 second',
                                         oldest_writer));
    IF start_at IS NULL THEN
        SELECT date_trunc('minute', min(h.finished_at)) INTO start_at
        FROM pgqueue.finished_jobs h;
        start_at := LEAST(COALESCE(start_at, end_at), end_at);
    END IF;
    end_at := GREATEST(start_at, LEAST(end_at, start_at + max_minutes * interval '1 minute'));
    IF end_at > start_at THEN
        WITH bins AS (
            SELECT date_trunc('minute', h.finished_at) AS minute, h.queue::text AS queue,
                   h.state,
                   width_bucket(extract(epoch FROM h.finished_at - h.started_at)::float8,
                                pgqueue.duration_bounds()) AS bin,
                   count(*) AS n,
                   sum(extract(epoch FROM h.finished_at - h.started_at)::float8) AS seconds
            FROM pgqueue.finished_jobs h
            WHERE h.finished_at >= start_at AND h.finished_at < end_at
            GROUP BY 1, 2, 3, 4
        ),
        buckets AS (
            SELECT w.width AS width_seconds,
                   to_timestamp(floor(extract(epoch FROM b.minute) / w.width) * w.width)
                       AS bucket,
                   b.queue,
                   sum(b.n) FILTER (WHERE b.state = 'succeeded') AS succeeded,
                   sum(b.n) FILTER (WHERE b.state = 'failed') AS failed,
                   sum(b.n) FILTER (WHERE b.state = 'cancelled') AS cancelled,
                   pgqueue.duration_histogram(array_agg(b.bin), array_agg(b.n)) AS durations,
                   COALESCE(sum(b.seconds), 0) AS duration_sum
            FROM bins b CROSS JOIN (VALUES (60), (600), (3600)) AS w(width)
            GROUP BY 1, 2, 3
        ),
        written AS (
            INSERT INTO pgqueue.finished_rollups AS r
                (width_seconds, bucket, queue, succeeded, failed, cancelled, durations,
                 duration_sum)
            SELECT b.width_seconds, b.bucket, b.queue, COALESCE(b.succeeded, 0),
                   COALESCE(b.failed, 0), COALESCE(b.cancelled, 0), b.durations,
                   b.duration_sum
            FROM buckets b
            ON CONFLICT (width_seconds, bucket, queue) DO UPDATE
            SET succeeded = r.succeeded + EXCLUDED.succeeded,
                failed = r.failed + EXCLUDED.failed,
                cancelled = r.cancelled + EXCLUDED.cancelled,
                durations = pgqueue.histogram_add(r.durations, EXCLUDED.durations),
                duration_sum = r.duration_sum + EXCLUDED.duration_sum
        )
        SELECT COALESCE(sum(b.n), 0) INTO added FROM bins b;
    END IF;
    UPDATE pgqueue.rollup_state s SET rolled_until = end_at, rolled_at = now();
    RETURN QUERY SELECT start_at, end_at, added;
END
$$;

COMMENT ON FUNCTION pgqueue.roll_up_finished(integer, double precision)
IS 'adds at most max_minutes of finished jobs from the watermark on to pgqueue.finished_rollups and moves the watermark';

-- Each queue's live jobs by state and its lag, as pgqueue.queue_stats counts
-- them, at sampled_at (one sample: the same sampled_at for every queue).
CREATE TABLE pgqueue.queue_samples (
    sampled_at timestamptz NOT NULL,
    queue text NOT NULL,
    ready bigint NOT NULL,
    scheduled bigint NOT NULL,
    running bigint NOT NULL,
    blocked bigint NOT NULL,
    unclaimable bigint NOT NULL,
    lag_seconds numeric NOT NULL,
    PRIMARY KEY (sampled_at, queue)
);

-- The samples per queue and bucket of 10 minutes and of an hour (the buckets of
-- the day and week charts): how many, the sums of their ready jobs and of their
-- depth (ready + scheduled + running + blocked), and the largest lag. The hour
-- chart reads the samples themselves.
CREATE TABLE pgqueue.queue_sample_rollups (
    width_seconds integer NOT NULL
        CONSTRAINT queue_sample_rollups_width CHECK (width_seconds IN (600, 3600)),
    bucket timestamptz NOT NULL,
    queue text NOT NULL,
    samples bigint NOT NULL,
    ready_sum numeric NOT NULL,
    depth_sum numeric NOT NULL,
    lag_max numeric NOT NULL,
    PRIMARY KEY (width_seconds, bucket, queue)
);

-- Take one sample of every queue, add it to the sample roll-ups, and remove
-- samples and roll-ups older than keep_seconds. Returns how many queues were
-- sampled. One pass of pgqueue.queue_stats_rows(): its cost grows with the
-- live jobs.
CREATE FUNCTION pgqueue.sample_queues(keep_seconds double precision DEFAULT 691200)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sampled bigint;
BEGIN
    IF keep_seconds IS NULL OR keep_seconds <= 0 THEN
        RAISE EXCEPTION 'pgqueue: keep_seconds must be more than 0, got %', keep_seconds
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH taken AS (
        INSERT INTO pgqueue.queue_samples
            (sampled_at, queue, ready, scheduled, running, blocked, unclaimable, lag_seconds)
        SELECT now(), s.queue, s.ready, s.scheduled, s.running, s.blocked, s.unclaimable,
               s.lag_seconds
        FROM pgqueue.queue_stats_rows() s
        ON CONFLICT (sampled_at, queue) DO NOTHING
        RETURNING *
    ),
    rolled AS (
        INSERT INTO pgqueue.queue_sample_rollups AS r
            (width_seconds, bucket, queue, samples, ready_sum, depth_sum, lag_max)
        SELECT w.width,
               to_timestamp(floor(extract(epoch FROM t.sampled_at) / w.width) * w.width),
               t.queue, 1, t.ready, t.ready + t.scheduled + t.running + t.blocked,
               t.lag_seconds
        FROM taken t CROSS JOIN (VALUES (600), (3600)) AS w(width)
        ON CONFLICT (width_seconds, bucket, queue) DO UPDATE
        SET samples = r.samples + 1,
            ready_sum = r.ready_sum + EXCLUDED.ready_sum,
            depth_sum = r.depth_sum + EXCLUDED.depth_sum,
            lag_max = GREATEST(r.lag_max, EXCLUDED.lag_max)
    )
    SELECT count(*) INTO sampled FROM taken;
    DELETE FROM pgqueue.queue_samples q
    WHERE q.sampled_at < now() - keep_seconds * interval '1 second';
    DELETE FROM pgqueue.queue_sample_rollups r
    WHERE r.width_seconds IN (600, 3600)
      AND r.bucket < now() - keep_seconds * interval '1 second';
    RETURN sampled;
END
$$;

COMMENT ON FUNCTION pgqueue.sample_queues(double precision)
IS 'one sample of every queue''s depth and lag into pgqueue.queue_samples and its roll-ups; drops those older than keep_seconds';

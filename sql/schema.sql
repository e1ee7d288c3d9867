CREATE SCHEMA pgqueue;

CREATE TYPE pgqueue.job_state AS ENUM (
    'queued',
    'running',
    'succeeded',
    'failed',
    'cancelled'
);

CREATE DOMAIN pgqueue.queue_name AS text
	CONSTRAINT queue_name_check CHECK ((VALUE ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'::text));

CREATE DOMAIN pgqueue.task_name AS text
	CONSTRAINT task_name_check CHECK ((VALUE ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$'::text));

CREATE FUNCTION pgqueue.append_error(errors jsonb, error jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN jsonb_array_length(errors) >= 10
                THEN (errors - 0) || jsonb_build_array(error)
                ELSE errors || jsonb_build_array(error) END
$$;

CREATE FUNCTION pgqueue.cancel(job_id bigint, reason text DEFAULT 'cancelled by request'::text) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
    current pgqueue.job_state;
BEGIN
    SELECT j.state INTO current FROM pgqueue.jobs j WHERE j.id = cancel.job_id FOR UPDATE;
    IF current = 'queued' THEN
        WITH gone AS (
            DELETE FROM pgqueue.jobs j WHERE j.id = cancel.job_id RETURNING j.*
        )
        INSERT INTO pgqueue.finished_jobs
            (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
             started_at, finished_at, worker_id, unique_key, last_error, errors, trace_context,
             timeout_seconds, expires_at, cancel_requested_at, depends_on, batch_id,
             concurrency_key)
        SELECT g.id, g.queue, g.task, g.args, g.priority, 'cancelled', g.attempt,
               g.max_attempts, g.run_at, g.created_at, g.started_at, now(), g.worker_id,
               g.unique_key, cancel.reason, g.errors, g.trace_context, g.timeout_seconds,
               g.expires_at, now(), g.depends_on, g.batch_id, g.concurrency_key
        FROM gone g;
        RETURN 'cancelled';
    ELSIF current = 'running' THEN
        UPDATE pgqueue.jobs j SET cancel_requested_at = COALESCE(j.cancel_requested_at, now())
        WHERE j.id = cancel.job_id;
        PERFORM pg_notify('pgqueue_control', 'cancel:' || cancel.job_id);
        RETURN 'requested';
    ELSIF EXISTS (SELECT 1 FROM pgqueue.finished_jobs h WHERE h.id = cancel.job_id) THEN
        RETURN 'finished';
    END IF;
    RETURN 'not_found';
END
$$;

CREATE FUNCTION pgqueue.enqueue(task text, args jsonb DEFAULT '{}'::jsonb, queue text DEFAULT 'default'::text, priority integer DEFAULT 0, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, delay_seconds double precision DEFAULT NULL::double precision, trace_context text DEFAULT NULL::text, expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone, ttl_seconds double precision DEFAULT NULL::double precision) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    new_id bigint;
BEGIN
    IF enqueue.run_at IS NOT NULL AND enqueue.delay_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give run_at or delay_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.expires_at IS NOT NULL AND enqueue.ttl_seconds IS NOT NULL THEN
        RAISE EXCEPTION 'pgqueue.enqueue: give expires_at or ttl_seconds, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.delay_seconds < 0 OR enqueue.ttl_seconds <= 0 THEN
        RAISE EXCEPTION 'pgqueue.enqueue: delay_seconds must be >= 0 and ttl_seconds > 0'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1..5 LOOP
        INSERT INTO pgqueue.jobs AS j
            (queue, task, args, priority, run_at, max_attempts, unique_key, trace_context,
             expires_at)
        VALUES (
            COALESCE(enqueue.queue, 'default'), enqueue.task, COALESCE(enqueue.args, '{}'::jsonb),
            COALESCE(enqueue.priority, 0),
            COALESCE(enqueue.run_at, now() + COALESCE(enqueue.delay_seconds, 0) * interval '1 second'),
            COALESCE(enqueue.max_attempts, 5), enqueue.unique_key, enqueue.trace_context,
            COALESCE(enqueue.expires_at, now() + enqueue.ttl_seconds * interval '1 second'))
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM pgqueue.jobs j WHERE j.unique_key = enqueue.unique_key;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'pgqueue.enqueue: unique_key % kept changing hands', enqueue.unique_key
        USING ERRCODE = 'serialization_failure';
END
$$;

CREATE FUNCTION pgqueue.jobs_after_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    q text;
BEGIN
    FOR q IN SELECT DISTINCT queue FROM new_jobs LOOP
        IF NOT EXISTS (SELECT 1 FROM pgqueue.queues WHERE name = q) THEN
            INSERT INTO pgqueue.queues (name) VALUES (q) ON CONFLICT DO NOTHING;
        END IF;
        PERFORM pg_notify('pgqueue_jobs', q);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION pgqueue.pause_queue(queue text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
    was_paused boolean;
BEGIN
    SELECT q.paused INTO was_paused FROM pgqueue.queues q
    WHERE q.name = pause_queue.queue FOR UPDATE;
    INSERT INTO pgqueue.queues AS q (name, paused, paused_at)
    VALUES (pause_queue.queue, true, now())
    ON CONFLICT (name) DO UPDATE SET paused = true, paused_at = COALESCE(q.paused_at, now());
    PERFORM pg_notify('pgqueue_control', 'pause:' || pause_queue.queue);
    RETURN NOT COALESCE(was_paused, false);
END
$$;

CREATE FUNCTION pgqueue.periodic_fire(name text, tick timestamp with time zone, next_tick timestamp with time zone, fire boolean) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    schedule pgqueue.periodic;
    job_id bigint;
BEGIN
    SELECT * INTO schedule FROM pgqueue.periodic p
    WHERE p.name = periodic_fire.name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF schedule.last_tick IS NOT NULL AND schedule.last_tick >= periodic_fire.tick THEN
        UPDATE pgqueue.periodic p SET next_tick = periodic_fire.next_tick
        WHERE p.name = periodic_fire.name;
        RETURN NULL;
    END IF;
    IF fire THEN
        job_id := pgqueue.enqueue(
            task => schedule.task, args => schedule.args, queue => schedule.queue,
            unique_key => 'periodic:' || schedule.name || ':'
                          || to_char(periodic_fire.tick AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS'));
    END IF;
    UPDATE pgqueue.periodic p
    SET last_tick = periodic_fire.tick, next_tick = periodic_fire.next_tick,
        last_job_id = COALESCE(job_id, p.last_job_id), updated_at = now()
    WHERE p.name = periodic_fire.name;
    RETURN job_id;
END
$$;

CREATE FUNCTION pgqueue.queue_stats_rows() RETURNS TABLE(queue text, ready bigint, scheduled bigint, running bigint, failed bigint, succeeded_1h bigint, lag_seconds numeric, unclaimable bigint, paused boolean)
    LANGUAGE sql STABLE
    SET jit TO 'off'
    AS $$
SELECT
    q.name::text AS queue,
    COALESCE(l.ready, 0)::bigint AS ready,
    COALESCE(l.scheduled, 0)::bigint AS scheduled,
    r.running,
    f.failed,
    s.succeeded_1h,
    round(COALESCE(extract(epoch FROM now() - l.oldest_ready), 0)::numeric, 3) AS lag_seconds,
    COALESCE(l.unclaimable, 0)::bigint AS unclaimable,
    q.paused
FROM pgqueue.queues q
LEFT JOIN LATERAL (
    SELECT
        sum(t.n) FILTER (WHERE t.due) AS ready,
        sum(t.n) FILTER (WHERE NOT t.due) AS scheduled,
        min(t.oldest) FILTER (WHERE t.due) AS oldest_ready,
        sum(t.n) FILTER (WHERE t.due AND NOT EXISTS (
            SELECT 1 FROM pgqueue.workers w
            WHERE q.name = ANY (w.queues) AND t.task = ANY (w.tasks))) AS unclaimable
    FROM (
        SELECT j.task, j.run_at <= now() AS due, count(*) AS n, min(j.run_at) AS oldest
        FROM pgqueue.jobs j
        WHERE j.queue = q.name AND j.state = 'queued'
        GROUP BY 1, 2
    ) t
) l ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM pgqueue.jobs j
    WHERE j.queue = q.name AND j.state = 'running'
) r
CROSS JOIN LATERAL (
    SELECT count(*) AS failed FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'failed'
) f
CROSS JOIN LATERAL (
    SELECT count(*) AS succeeded_1h FROM pgqueue.finished_jobs h
    WHERE h.queue = q.name AND h.state = 'succeeded'
      AND h.finished_at > now() - interval '1 hour'
) s;
$$;

CREATE FUNCTION pgqueue.resume_queue(queue text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
    was_paused boolean;
BEGIN
    UPDATE pgqueue.queues q SET paused = false, paused_at = NULL
    WHERE q.name = resume_queue.queue AND q.paused
    RETURNING true INTO was_paused;
    PERFORM pg_notify('pgqueue_control', 'resume:' || resume_queue.queue);
    PERFORM pg_notify('pgqueue_jobs', resume_queue.queue);
    RETURN COALESCE(was_paused, false);
END
$$;

CREATE FUNCTION pgqueue.retry(job_id bigint) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
    found_state pgqueue.job_state;
BEGIN
    IF EXISTS (SELECT 1 FROM pgqueue.retry_jobs(ARRAY[job_id])) THEN
        RETURN 'retried';
    END IF;
    IF EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = job_id) THEN
        RETURN 'live';
    END IF;
    SELECT h.state INTO found_state FROM pgqueue.finished_jobs h WHERE h.id = job_id;
    IF found_state IS NULL THEN
        RETURN 'not_found';
    ELSIF found_state = 'succeeded' THEN
        RETURN 'succeeded';
    END IF;
    RETURN 'unique_key_taken';
END
$$;

CREATE FUNCTION pgqueue.retry_failed(queue text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE sql
    AS $$
    SELECT count(*) FROM pgqueue.retry_jobs(ARRAY(
        SELECT h.id FROM pgqueue.finished_jobs h
        WHERE h.state = 'failed' AND (retry_failed.queue IS NULL OR h.queue = retry_failed.queue)))
$$;

CREATE FUNCTION pgqueue.retry_jobs(ids bigint[]) RETURNS SETOF bigint
    LANGUAGE sql
    AS $$
    WITH moved AS (
        DELETE FROM pgqueue.finished_jobs h
        WHERE h.id = ANY (ids)
          AND h.state IN ('failed', 'cancelled')
          AND NOT EXISTS (SELECT 1 FROM pgqueue.jobs j WHERE j.id = h.id)
          AND (h.unique_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM pgqueue.jobs j WHERE j.unique_key = h.unique_key))
        RETURNING h.*
    )
    INSERT INTO pgqueue.jobs AS j
        (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
         unique_key, last_error, errors, trace_context, timeout_seconds, expires_at,
         depends_on, batch_id, concurrency_key)
    SELECT m.id, m.queue, m.task, m.args, m.priority, 'queued', 0, m.max_attempts, now(),
           m.created_at, m.unique_key, m.last_error, m.errors, m.trace_context,
           m.timeout_seconds, NULL, m.depends_on, m.batch_id, m.concurrency_key
    FROM moved m
    RETURNING j.id
$$;

CREATE TABLE pgqueue.finished_jobs (
    id bigint NOT NULL,
    queue text NOT NULL,
    task text NOT NULL,
    args jsonb NOT NULL,
    priority integer NOT NULL,
    state pgqueue.job_state NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    run_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id uuid,
    unique_key text,
    last_error text,
    errors jsonb NOT NULL,
    trace_context text,
    timeout_seconds double precision,
    expires_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    depends_on bigint[],
    batch_id bigint,
    concurrency_key text,
    result jsonb,
    CONSTRAINT finished_jobs_final_state CHECK ((state = ANY (ARRAY['succeeded'::pgqueue.job_state, 'failed'::pgqueue.job_state, 'cancelled'::pgqueue.job_state])))
);

CREATE TABLE pgqueue.jobs (
    id bigint NOT NULL,
    queue pgqueue.queue_name DEFAULT 'default'::text NOT NULL,
    task pgqueue.task_name NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    state pgqueue.job_state DEFAULT 'queued'::pgqueue.job_state NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    heartbeat_at timestamp with time zone,
    worker_id uuid,
    unique_key text,
    last_error text,
    errors jsonb DEFAULT '[]'::jsonb NOT NULL,
    trace_context text,
    timeout_seconds double precision,
    expires_at timestamp with time zone,
    cancel_requested_at timestamp with time zone,
    depends_on bigint[],
    batch_id bigint,
    concurrency_key text,
    CONSTRAINT jobs_args_object CHECK ((jsonb_typeof(args) = 'object'::text)),
    CONSTRAINT jobs_attempt_range CHECK ((attempt >= 0)),
    CONSTRAINT jobs_errors_array CHECK ((jsonb_typeof(errors) = 'array'::text)),
    CONSTRAINT jobs_live_state CHECK ((state = ANY (ARRAY['queued'::pgqueue.job_state, 'running'::pgqueue.job_state]))),
    CONSTRAINT jobs_max_attempts_range CHECK ((max_attempts >= 1)),
    CONSTRAINT jobs_priority_range CHECK (((priority >= '-1000'::integer) AND (priority <= 1000))),
    CONSTRAINT jobs_running_has_worker CHECK (((state <> 'running'::pgqueue.job_state) OR (worker_id IS NOT NULL))),
    CONSTRAINT jobs_timeout_positive CHECK ((timeout_seconds > (0)::double precision)),
    CONSTRAINT jobs_unique_key_length CHECK (((length(unique_key) >= 1) AND (length(unique_key) <= 255)))
);

CREATE VIEW pgqueue.all_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.args,
    j.priority,
    j.state,
    j.attempt,
    j.max_attempts,
    j.run_at,
    j.created_at,
    j.started_at,
    NULL::timestamp with time zone AS finished_at,
    j.heartbeat_at,
    j.worker_id,
    j.unique_key,
    j.last_error,
    j.errors,
    j.trace_context,
    NULL::jsonb AS result
   FROM pgqueue.jobs j
UNION ALL
 SELECT h.id,
    h.queue,
    h.task,
    h.args,
    h.priority,
    h.state,
    h.attempt,
    h.max_attempts,
    h.run_at,
    h.created_at,
    h.started_at,
    h.finished_at,
    NULL::timestamp with time zone AS heartbeat_at,
    h.worker_id,
    h.unique_key,
    h.last_error,
    h.errors,
    h.trace_context,
    h.result
   FROM pgqueue.finished_jobs h;

CREATE VIEW pgqueue.failed_jobs AS
 SELECT h.id,
    h.queue,
    h.task,
    h.attempt,
    h.max_attempts,
    h.finished_at,
    h.last_error,
    h.errors,
    h.args,
    h.worker_id
   FROM pgqueue.finished_jobs h
  WHERE (h.state = 'failed'::pgqueue.job_state);

ALTER TABLE pgqueue.jobs ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME pgqueue.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE pgqueue.leader (
    name text NOT NULL,
    worker_id uuid NOT NULL,
    elected_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE pgqueue.migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE pgqueue.periodic (
    name text NOT NULL,
    cron text NOT NULL,
    task pgqueue.task_name NOT NULL,
    queue pgqueue.queue_name NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    on_missed text DEFAULT 'skip'::text NOT NULL,
    last_tick timestamp with time zone,
    last_job_id bigint,
    next_tick timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT periodic_on_missed_check CHECK ((on_missed = ANY (ARRAY['skip'::text, 'run_once'::text])))
);

CREATE VIEW pgqueue.queue_stats AS
 SELECT queue_stats_rows.queue,
    queue_stats_rows.ready,
    queue_stats_rows.scheduled,
    queue_stats_rows.running,
    queue_stats_rows.failed,
    queue_stats_rows.succeeded_1h,
    queue_stats_rows.lag_seconds,
    queue_stats_rows.unclaimable,
    queue_stats_rows.paused
   FROM pgqueue.queue_stats_rows() queue_stats_rows(queue, ready, scheduled, running, failed, succeeded_1h, lag_seconds, unclaimable, paused);

CREATE TABLE pgqueue.queues (
    name pgqueue.queue_name NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    paused_at timestamp with time zone
);

CREATE VIEW pgqueue.recent_throughput AS
 SELECT h.queue,
    date_trunc('minute'::text, h.finished_at) AS minute,
    count(*) FILTER (WHERE (h.state = 'succeeded'::pgqueue.job_state)) AS succeeded,
    count(*) FILTER (WHERE (h.state = 'failed'::pgqueue.job_state)) AS failed,
    count(*) FILTER (WHERE (h.state = 'cancelled'::pgqueue.job_state)) AS cancelled
   FROM pgqueue.finished_jobs h
  WHERE (h.finished_at > (now() - '01:00:00'::interval))
  GROUP BY h.queue, (date_trunc('minute'::text, h.finished_at));

CREATE TABLE pgqueue.workers (
    id uuid NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    tasks text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE VIEW pgqueue.running_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.attempt,
    j.max_attempts,
    j.started_at,
    round(EXTRACT(epoch FROM (now() - j.started_at)), 3) AS running_seconds,
    j.heartbeat_at,
    round(EXTRACT(epoch FROM (now() - j.heartbeat_at)), 3) AS heartbeat_age_seconds,
    j.worker_id,
    w.host AS worker_host,
    w.pid AS worker_pid,
    j.args
   FROM (pgqueue.jobs j
     LEFT JOIN pgqueue.workers w ON ((w.id = j.worker_id)))
  WHERE (j.state = 'running'::pgqueue.job_state);

CREATE VIEW pgqueue.scheduled_jobs AS
 SELECT j.id,
    (j.queue)::text AS queue,
    (j.task)::text AS task,
    j.run_at,
    round(EXTRACT(epoch FROM (j.run_at - now())), 3) AS due_in_seconds,
    j.attempt,
    j.max_attempts,
    j.last_error,
    j.args
   FROM pgqueue.jobs j
  WHERE ((j.state = 'queued'::pgqueue.job_state) AND (j.run_at > now()));

ALTER TABLE ONLY pgqueue.finished_jobs
    ADD CONSTRAINT finished_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgqueue.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgqueue.leader
    ADD CONSTRAINT leader_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.migrations
    ADD CONSTRAINT migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY pgqueue.periodic
    ADD CONSTRAINT periodic_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.queues
    ADD CONSTRAINT queues_pkey PRIMARY KEY (name);

ALTER TABLE ONLY pgqueue.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);

CREATE INDEX finished_jobs_finished_at_idx ON pgqueue.finished_jobs USING brin (finished_at);

CREATE INDEX finished_jobs_queue_state_id_idx ON pgqueue.finished_jobs USING btree (queue, state, id);

CREATE INDEX finished_jobs_queue_state_idx ON pgqueue.finished_jobs USING btree (queue, state, finished_at);

CREATE INDEX jobs_claim_idx ON pgqueue.jobs USING btree (queue, priority DESC, run_at, id) WHERE (state = 'queued'::pgqueue.job_state);

CREATE INDEX jobs_expires_at_idx ON pgqueue.jobs USING btree (expires_at) WHERE ((expires_at IS NOT NULL) AND (state = 'queued'::pgqueue.job_state));

CREATE INDEX jobs_running_idx ON pgqueue.jobs USING btree (worker_id) WHERE (state = 'running'::pgqueue.job_state);

CREATE UNIQUE INDEX jobs_unique_key_idx ON pgqueue.jobs USING btree (unique_key) WHERE (unique_key IS NOT NULL);

CREATE TRIGGER jobs_after_insert AFTER INSERT ON pgqueue.jobs REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION pgqueue.jobs_after_insert();

-- 0006_fast_names: the same name rules, checked without bounded repetition.
--
-- PostgreSQL's regex engine expands a bounded repetition such as {0,199} into
-- that many states, and the domain check runs on every row written. Inserting
-- 100,000 jobs spent 1.7 s of 2.6 s in the task_name check alone. An unbounded
-- class plus a length test accepts exactly the same names (queue: 1-64
-- characters, task: 1-200) at a fraction of the cost.
ALTER DOMAIN pgqueue.queue_name DROP CONSTRAINT queue_name_check;
ALTER DOMAIN pgqueue.queue_name ADD CONSTRAINT queue_name_check
    CHECK (VALUE ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' AND length(VALUE) <= 64);
ALTER DOMAIN pgqueue.task_name DROP CONSTRAINT task_name_check;
ALTER DOMAIN pgqueue.task_name ADD CONSTRAINT task_name_check
    CHECK (VALUE ~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]*$' AND length(VALUE) <= 200);

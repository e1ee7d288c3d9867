-- job_link_dependencies: after new jobs with depends_on were inserted (blocked),
-- attach them to their dependencies (pgqueue.link_dependencies): live ones are
-- locked until this transaction ends and marked; finished ones settle the new
-- jobs at once (claimable, or cancelled when one failed).
-- Parameters: ids (bigint[]): the new jobs that have dependencies.
SELECT pgqueue.link_dependencies(%(ids)s::bigint[])

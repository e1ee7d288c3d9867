-- rollup_state_get: the roll-ups' watermark: every finished row before rolled_until
-- is counted in pgqueue.finished_rollups (NULL: nothing yet, or no state row).
-- Read first by the chart query's caller, so that the raw part of
-- dashboard_chart_finished is planned with the watermark as a constant (the BRIN
-- range it reads is then estimated right).
-- Parameters: none. Returns one row: rolled_until, rolled_at.
SELECT (SELECT s.rolled_until FROM pgqueue.rollup_state s) AS rolled_until,
       (SELECT s.rolled_at FROM pgqueue.rollup_state s) AS rolled_at

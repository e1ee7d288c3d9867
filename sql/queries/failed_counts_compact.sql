-- failed_counts_compact: fold the failed-count deltas of each queue into one row
-- (pgqueue.compact_failed_counts, migration 0007). Run by the leader every reaper
-- tick so that queue_stats sums a handful of rows.
-- Parameters: none. Returns one row: how many delta rows were folded (0 when
--   every queue had one row at most; then nothing was written).
-- Locks: the delta rows it removes; appends of running statements are not waited for.
SELECT pgqueue.compact_failed_counts() AS folded

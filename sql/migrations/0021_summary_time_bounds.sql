-- 0021_summary_time_bounds: the range check every other timestamp column of
-- pgqueue has (1970 to 9999, pgqueue.timestamp_in_bounds, migration 0009), on
-- the timestamps of the dashboard's summaries (migration 0018). The leader
-- writes them from now() and from finished_at, which is checked already; the
-- check keeps a hand-written row (a watermark moved by hand, say) in range too.
-- The tables are small (8 days of samples and roll-ups), so validating is quick.

ALTER TABLE pgqueue.finished_rollups
    ADD CONSTRAINT finished_rollups_bucket_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(bucket));

ALTER TABLE pgqueue.rollup_state
    ADD CONSTRAINT rollup_state_rolled_until_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(rolled_until)),
    ADD CONSTRAINT rollup_state_rolled_at_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(rolled_at));

ALTER TABLE pgqueue.queue_samples
    ADD CONSTRAINT queue_samples_sampled_at_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(sampled_at));

ALTER TABLE pgqueue.queue_sample_rollups
    ADD CONSTRAINT queue_sample_rollups_bucket_between_1970_and_9999
        CHECK (pgqueue.timestamp_in_bounds(bucket));

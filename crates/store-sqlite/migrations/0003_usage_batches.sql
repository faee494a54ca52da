-- Usage batches already written (see keyward_store::UsageBatch): a batch sent again after a
-- write whose answer was lost is recognised here and not counted twice. Kept for a day.
CREATE TABLE usage_batches (
    id          TEXT PRIMARY KEY NOT NULL,
    taken_at    INTEGER NOT NULL -- ms since the epoch
);
CREATE INDEX usage_batches_by_time ON usage_batches (taken_at);

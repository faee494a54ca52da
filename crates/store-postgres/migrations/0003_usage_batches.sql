-- Usage batches already written (see keyward_store::UsageBatch): a batch sent again after a
-- write whose answer was lost is recognised here and not counted twice. Kept for a day.
CREATE TABLE usage_batches (
    id        UUID NOT NULL CONSTRAINT usage_batches_pkey PRIMARY KEY,
    taken_at  BIGINT NOT NULL -- ms since the epoch
);
CREATE INDEX usage_batches_by_time ON usage_batches (taken_at);

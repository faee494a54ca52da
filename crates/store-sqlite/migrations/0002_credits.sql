-- Credits: uses left on a key, and an optional daily or monthly refill (see keyward_domain::credits).
ALTER TABLE api_keys ADD COLUMN remaining INTEGER;        -- NULL: the key has no credits
ALTER TABLE api_keys ADD COLUMN refill_interval TEXT;     -- 'daily' | 'monthly' | NULL
ALTER TABLE api_keys ADD COLUMN refill_amount INTEGER;
ALTER TABLE api_keys ADD COLUMN refill_day INTEGER;
ALTER TABLE api_keys ADD COLUMN credits_set_at INTEGER;   -- ms since the epoch

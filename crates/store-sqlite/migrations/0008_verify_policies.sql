-- Richer decisions at verify (issue 18): IP allowlists, cluster-wide rate limits, and limits
-- shared by one owner's keys.

-- A key's IP allowlist: a JSON array of CIDR networks; NULL: anywhere.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
-- Where a key's rate limit holds: NULL (this node) or 'cluster'.
ALTER TABLE api_keys ADD COLUMN rate_limit_scope TEXT;

-- The database's count of each cluster-wide limit's current fixed window; nodes lease budgets
-- from it (see keyward_domain::ratelimit::RateLimitScope::Cluster). One row per key: a new
-- window starts the count again.
CREATE TABLE rate_limit_windows (
    key_id       TEXT PRIMARY KEY NOT NULL,
    window_start INTEGER NOT NULL, -- ms since the unix epoch
    used         INTEGER NOT NULL
);

-- Limits shared by all the keys of one owner: a rate limit and/or credits (the columns of a
-- key's own), read with each key through the view so that verify needs one read.
CREATE TABLE owner_limits (
    user_id            TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rate_limit_max     INTEGER,
    rate_limit_window  TEXT,
    remaining          INTEGER, -- NULL: no shared credits
    refill_interval    TEXT,
    refill_amount      INTEGER,
    refill_day         INTEGER,
    credits_set_at     INTEGER,
    updated_at         INTEGER NOT NULL
);

-- The view's * was expanded when it was made: make it again to carry the new columns.
DROP VIEW api_keys_in_use;
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at,
        ol.rate_limit_max AS owner_rate_limit_max,
        ol.rate_limit_window AS owner_rate_limit_window,
        COALESCE(ol.remaining IS NOT NULL, 0) AS owner_has_credits
    FROM api_keys k
    LEFT JOIN key_last_used lu ON lu.key_id = k.id
    LEFT JOIN owner_limits ol ON ol.user_id = k.owner_id;

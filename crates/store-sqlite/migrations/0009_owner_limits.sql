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
DROP VIEW api_keys_in_use;
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at,
        ol.rate_limit_max AS owner_rate_limit_max,
        ol.rate_limit_window AS owner_rate_limit_window,
        COALESCE(ol.remaining IS NOT NULL, 0) AS owner_has_credits
    FROM api_keys k
    LEFT JOIN key_last_used lu ON lu.key_id = k.id
    LEFT JOIN owner_limits ol ON ol.user_id = k.owner_id;

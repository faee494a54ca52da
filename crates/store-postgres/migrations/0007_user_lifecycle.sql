-- User lifecycle: disabled and deleted users, and the API's sign-in sessions.

-- Since when the user may not sign in and its keys answer OWNER_DISABLED; NULL: active.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
-- Since when the user is deleted. The row stays (its revoked keys and the audit log name it),
-- its email is freed (rewritten to a reserved .invalid address, RFC 2606) and its password
-- hash can match nothing.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- A session of the API: a JWT whose `jti` is `id`. Deleted when it ends; the token is never
-- stored.
CREATE TABLE api_sessions (
    id         UUID PRIMARY KEY NOT NULL,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL, -- ms since the unix epoch
    expires_at BIGINT NOT NULL,
    source_ip  TEXT
);
CREATE INDEX api_sessions_by_user ON api_sessions (user_id);

-- The view carries whether the key's owner is disabled, so that verify stays one read.
DROP VIEW api_keys_in_use;
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at,
        ol.rate_limit_max AS owner_rate_limit_max,
        ol.rate_limit_window AS owner_rate_limit_window,
        COALESCE(ol.remaining IS NOT NULL, FALSE) AS owner_has_credits,
        COALESCE(u.disabled_at IS NOT NULL, FALSE) AS owner_disabled
    FROM api_keys k
    LEFT JOIN key_last_used lu ON lu.key_id = k.id
    LEFT JOIN owner_limits ol ON ol.user_id = k.owner_id
    LEFT JOIN users u ON u.id = k.owner_id;

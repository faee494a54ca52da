-- Signed-in sessions of the web console. The browser holds a random token; only its SHA-256
-- digest is kept, so the table gives no usable session. A user's sessions go with the user.
CREATE TABLE console_sessions (
    digest       BYTEA PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL, -- ms since the unix epoch
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);

-- Signed-in sessions of the web console. The browser holds a random token; only its SHA-256
-- digest is kept, so the table gives no usable session. A user's sessions go with the user.
CREATE TABLE console_sessions (
    digest       BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    created_at   INTEGER NOT NULL, -- ms since the unix epoch
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);

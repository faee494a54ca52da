-- keyward's embedded schema. Times are unix milliseconds (INTEGER), ids are UUID text,
-- scopes / metadata / changes are JSON text. Key secrets are never stored: only the SHA-256
-- digest (BLOB) is.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    key_prefix  TEXT,
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX tenants_by_creation ON tenants (created_at, id);

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    tenant_id      TEXT REFERENCES tenants (id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- tenant_id is deliberately not a foreign key: a deleted tenant's revoked keys keep it as history.
CREATE TABLE api_keys (
    id                 TEXT PRIMARY KEY NOT NULL,
    tenant_id          TEXT,
    owner_id           TEXT NOT NULL,
    name               TEXT,
    prefix             TEXT NOT NULL,
    start              TEXT NOT NULL,
    digest             BLOB NOT NULL UNIQUE,
    scopes             TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    rate_limit_max     INTEGER,
    rate_limit_window  TEXT,
    expires_at         INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    revoked_at         INTEGER,
    last_used_at       INTEGER
);
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);
CREATE INDEX api_keys_by_owner ON api_keys (owner_id, created_at, id);

CREATE TABLE audit_log (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        TEXT,
    action           TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    actor_type       TEXT NOT NULL,
    actor_user_id    TEXT,
    subject_user_id  TEXT,
    source_ip        TEXT,
    request_id       TEXT,
    changes          TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX audit_by_creation ON audit_log (created_at, id);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, created_at, id);
CREATE INDEX audit_by_resource ON audit_log (resource_type, resource_id);

-- Verifications per key, per UTC day, per outcome code; written in batches by the verify path.
CREATE TABLE key_usage (
    key_id  TEXT NOT NULL,
    day     INTEGER NOT NULL, -- days since the unix epoch (UTC)
    code    TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (key_id, day, code)
);

-- keyward's PostgreSQL schema: the SQLite migrations combined, with native types where they
-- change nothing a caller sees. Times are unix milliseconds (BIGINT), as in SQLite, so both
-- backends compare and round-trip times identically. Ids are UUID. scopes / metadata / changes
-- are JSON text, kept byte for byte as written. Key secrets are never stored: only the SHA-256
-- digest (BYTEA) is.
--
-- Constraint names matter: the store maps a unique violation to "slug", "email", "digest" or
-- "id" by the name of the constraint that failed.

CREATE TABLE tenants (
    id          UUID NOT NULL CONSTRAINT tenants_id_pkey PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL CONSTRAINT tenants_slug_unique UNIQUE,
    key_prefix  TEXT,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX tenants_by_creation ON tenants (created_at, id);

CREATE TABLE users (
    id             UUID NOT NULL CONSTRAINT users_id_pkey PRIMARY KEY,
    email          TEXT NOT NULL CONSTRAINT users_email_unique UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    tenant_id      UUID CONSTRAINT users_tenant_fkey REFERENCES tenants (id) ON DELETE SET NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX users_by_tenant ON users (tenant_id);

-- tenant_id is deliberately not a foreign key: a deleted tenant's revoked keys keep it as history.
CREATE TABLE api_keys (
    id                 UUID NOT NULL CONSTRAINT api_keys_id_pkey PRIMARY KEY,
    tenant_id          UUID,
    owner_id           UUID NOT NULL,
    name               TEXT,
    prefix             TEXT NOT NULL,
    start              TEXT NOT NULL,
    digest             BYTEA NOT NULL CONSTRAINT api_keys_digest_unique UNIQUE,
    scopes             TEXT NOT NULL,
    metadata           TEXT NOT NULL,
    rate_limit_max     BIGINT,
    rate_limit_window  TEXT,
    expires_at         BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    revoked_at         BIGINT,
    last_used_at       BIGINT,
    -- Credits: uses left on a key, and an optional daily or monthly refill
    -- (see keyward_domain::credits).
    remaining          BIGINT,   -- NULL: the key has no credits
    refill_interval    TEXT,     -- 'daily' | 'monthly' | NULL
    refill_amount      BIGINT,
    refill_day         BIGINT,
    credits_set_at     BIGINT
);
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, id);
CREATE INDEX api_keys_by_owner ON api_keys (owner_id, created_at, id);

CREATE TABLE audit_log (
    id               UUID NOT NULL CONSTRAINT audit_log_id_pkey PRIMARY KEY,
    tenant_id        UUID,
    action           TEXT NOT NULL,
    resource_type    TEXT NOT NULL,
    resource_id      TEXT NOT NULL,
    actor_id         TEXT NOT NULL,
    actor_type       TEXT NOT NULL,
    actor_user_id    UUID,
    subject_user_id  UUID,
    source_ip        TEXT,
    request_id       TEXT,
    changes          TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX audit_by_creation ON audit_log (created_at, id);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, created_at, id);
CREATE INDEX audit_by_resource ON audit_log (resource_type, resource_id);

-- Verifications per key, per UTC day, per outcome code; written in batches by the verify path.
-- code sorts bytewise (COLLATE "C") whatever the cluster's locale, as it does in SQLite: usage
-- listings page on (key_id, day, code).
CREATE TABLE key_usage (
    key_id  UUID NOT NULL,
    day     BIGINT NOT NULL, -- days since the unix epoch (UTC)
    code    TEXT COLLATE "C" NOT NULL,
    count   BIGINT NOT NULL,
    CONSTRAINT key_usage_id_pkey PRIMARY KEY (key_id, day, code)
);

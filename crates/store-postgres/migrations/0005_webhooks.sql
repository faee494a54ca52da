-- Paused keys, tenant policies, webhook endpoints, the outbox of their deliveries, and the
-- once-only notices about keys (expiry reminders, leak reports).
ALTER TABLE api_keys ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
-- The view's * was expanded when it was made: make it again to carry the new column.
DROP VIEW api_keys_in_use;
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at
    FROM api_keys k LEFT JOIN key_last_used lu ON lu.key_id = k.id;

-- The expiry scheduler reads keys by expiry every minute.
CREATE INDEX api_keys_by_expiry ON api_keys (expires_at, id) WHERE expires_at IS NOT NULL;

ALTER TABLE tenants ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE webhook_endpoints (
    id          UUID PRIMARY KEY,
    tenant_id   UUID REFERENCES tenants (id) ON DELETE CASCADE, -- NULL: installation-wide
    url         TEXT NOT NULL,
    events      TEXT NOT NULL, -- '*' or ',type,type,'
    enabled     BOOLEAN NOT NULL,
    description TEXT,
    secret      TEXT NOT NULL, -- whsec_<base64>
    created_at  BIGINT NOT NULL, -- ms since the unix epoch
    updated_at  BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at, id);

-- One event on its way to one endpoint: written in the transaction of the change that caused it.
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL, -- pending | succeeded | failed
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_id        UUID,    -- the node's claim while it sends
    lease_until     BIGINT,
    last_attempt_at BIGINT,
    response_status BIGINT,
    response_body   TEXT,
    duration_ms     BIGINT,
    error           TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at, id);

-- Notices sent once per key: 'expiring:<seconds>', 'expired', 'leaked', 'credits_exhausted:<ms>'.
CREATE TABLE key_notices (
    key_id     UUID NOT NULL,
    notice     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, notice)
);

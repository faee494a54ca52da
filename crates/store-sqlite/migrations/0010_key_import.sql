-- Imported keys: the shapes of other services' keys that verify accepts (see
-- keyward_domain::import). A key of a shape is stored like any other, by its digest.
CREATE TABLE key_shapes (
    id            TEXT PRIMARY KEY NOT NULL,
    format        TEXT NOT NULL,     -- estuary, stratum, sha256
    prefix        TEXT NOT NULL,
    hmac_secret   BLOB,              -- NULL: keys are stored by SHA-256
    -- SHA-256 of hmac_secret in hex, or '' (so that one shape is stored once).
    secret_digest TEXT NOT NULL,
    created_at    INTEGER NOT NULL,  -- ms since the unix epoch
    UNIQUE (format, prefix, secret_digest)
);

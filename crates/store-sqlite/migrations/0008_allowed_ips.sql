-- A key's IP allowlist: a JSON array of CIDR networks; NULL: anywhere.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;
-- The view's * was expanded when it was made: make it again to carry the new column.
DROP VIEW api_keys_in_use;
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at
    FROM api_keys k LEFT JOIN key_last_used lu ON lu.key_id = k.id;

-- `last_used_at` moves to a narrow table of its own (as on PostgreSQL). The verify path writes
-- it in batches, up to one row per active key a minute; as a column of api_keys every such
-- write rewrote a page of wide rows (100,000 random keys land on ~45,000 of the ~53,000 pages
-- of a million-key table). Here a row is a key id and a time, and only keys ever used have one.
CREATE TABLE key_last_used (
    key_id  TEXT PRIMARY KEY NOT NULL,
    at      INTEGER NOT NULL -- ms since the epoch
) WITHOUT ROWID;
INSERT INTO key_last_used (key_id, at)
    SELECT id, last_used_at FROM api_keys WHERE last_used_at IS NOT NULL;
ALTER TABLE api_keys DROP COLUMN last_used_at;

-- Keys as the store reads them (SQLite expands `k.*` when the view is queried).
CREATE VIEW api_keys_in_use AS
    SELECT k.*, lu.at AS last_used_at
    FROM api_keys k LEFT JOIN key_last_used lu ON lu.key_id = k.id;

-- Archived call recordings (tollgate-archive): one row per recording, what
-- `tollgate archive list/get/purge` read. `object_key` is the WAV's key in
-- the store (the recording's other objects share its prefix), `size` and
-- `sha256` are those of the stored (encrypted) object, `key_id` the KEK
-- that wrapped its data key. The unique recording_id makes a replayed
-- insert a no-op.
CREATE TABLE IF NOT EXISTS recordings (
    id BIGSERIAL PRIMARY KEY,
    recording_id TEXT NOT NULL UNIQUE,
    call_id TEXT NOT NULL,
    org_id TEXT,
    kind TEXT NOT NULL,
    object_key TEXT NOT NULL,
    url TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    codec TEXT,
    duration_ms BIGINT NOT NULL,
    key_id TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL,
    retention_until TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_call_id ON recordings (call_id);
CREATE INDEX IF NOT EXISTS recordings_retention_until ON recordings (retention_until);

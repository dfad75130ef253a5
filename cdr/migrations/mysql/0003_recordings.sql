-- Archived call recordings (tollgate-archive): one row per recording, what
-- `tollgate archive list/get/purge` read. `object_key` is the WAV's key in
-- the store (the recording's other objects share its prefix), `size` and
-- `sha256` are those of the stored (encrypted) object, `key_id` the KEK
-- that wrapped its data key. The unique recording_id makes a replayed
-- insert a no-op.
CREATE TABLE IF NOT EXISTS recordings (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    recording_id VARCHAR(255) NOT NULL,
    call_id VARCHAR(255) NOT NULL,
    org_id VARCHAR(255),
    kind VARCHAR(16) NOT NULL,
    object_key TEXT NOT NULL,
    url TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    codec VARCHAR(64),
    duration_ms BIGINT NOT NULL,
    key_id VARCHAR(255),
    started_at DATETIME(3) NOT NULL,
    archived_at DATETIME(3) NOT NULL,
    retention_until DATETIME(3) NOT NULL,
    UNIQUE KEY recordings_recording_id (recording_id),
    KEY recordings_call_id (call_id),
    KEY recordings_retention_until (retention_until)
);

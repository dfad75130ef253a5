-- Tollgate CDRs in the voip_db shape: `call_logs` keeps the columns other
-- tools already read (call_id .. recording_url) and gains the rest; each
-- leg is a row of `cdr_legs`. Written so an existing call_logs is extended,
-- not replaced. Unique keys make replayed deliveries no-ops.
CREATE TABLE IF NOT EXISTS call_logs (
    id BIGSERIAL PRIMARY KEY,
    call_id TEXT NOT NULL,
    from_number TEXT,
    to_number TEXT,
    status TEXT,
    start_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    duration BIGINT,
    recording_url TEXT
);
ALTER TABLE call_logs
    ADD COLUMN IF NOT EXISTS answer_time TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS billable_seconds BIGINT,
    ADD COLUMN IF NOT EXISTS sip_code BIGINT,
    ADD COLUMN IF NOT EXISTS sip_reason TEXT,
    ADD COLUMN IF NOT EXISTS hangup_by TEXT,
    ADD COLUMN IF NOT EXISTS from_uri TEXT,
    ADD COLUMN IF NOT EXISTS to_uri TEXT,
    ADD COLUMN IF NOT EXISTS request_uri TEXT,
    ADD COLUMN IF NOT EXISTS source_ip TEXT,
    ADD COLUMN IF NOT EXISTS destination_ip TEXT,
    ADD COLUMN IF NOT EXISTS transport TEXT,
    ADD COLUMN IF NOT EXISTS trunk TEXT,
    ADD COLUMN IF NOT EXISTS gateway TEXT,
    ADD COLUMN IF NOT EXISTS carrier TEXT,
    ADD COLUMN IF NOT EXISTS org_id TEXT,
    ADD COLUMN IF NOT EXISTS record TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS call_logs_call_id ON call_logs (call_id);
CREATE INDEX IF NOT EXISTS call_logs_start_time ON call_logs (start_time);

CREATE TABLE IF NOT EXISTS cdr_legs (
    id BIGSERIAL PRIMARY KEY,
    call_id TEXT NOT NULL,
    leg TEXT NOT NULL,
    sip_call_id TEXT NOT NULL,
    from_tag TEXT,
    to_tag TEXT,
    from_uri TEXT,
    to_uri TEXT,
    request_uri TEXT,
    signal_ip TEXT,
    media_ip TEXT,
    transport TEXT,
    codec TEXT,
    start_time TIMESTAMPTZ,
    answer_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    sip_code BIGINT,
    rx_packets BIGINT,
    rx_bytes BIGINT,
    rx_lost BIGINT,
    rx_jitter_ms DOUBLE PRECISION,
    rx_mos DOUBLE PRECISION,
    tx_packets BIGINT,
    tx_bytes BIGINT,
    tx_lost BIGINT,
    tx_jitter_ms DOUBLE PRECISION,
    tx_mos DOUBLE PRECISION,
    UNIQUE (call_id, leg)
);

-- What each leg's party reported in RTCP of the media the relay sent it:
-- cumulative packets lost and interarrival jitter from its last report
-- block, and the relay's round trip to it (LSR/DLSR). NULL without RTCP.
ALTER TABLE cdr_legs
    ADD COLUMN remote_lost BIGINT,
    ADD COLUMN remote_jitter_ms DOUBLE,
    ADD COLUMN rtt_ms DOUBLE;

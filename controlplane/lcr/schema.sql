-- Least-cost routing tables, read by Tollgate's B2BUA (SQLite, PostgreSQL,
-- MariaDB). The shape: a dialled number's longest matching prefix names a
-- band; a band's rates price each carrier; a carrier has gateways tried in
-- priority order; overrides put chosen carriers first for a prefix;
-- Tollgate writes each gateway's health from its OPTIONS pings.
CREATE TABLE IF NOT EXISTS bands (
    id INTEGER PRIMARY KEY,
    name VARCHAR(64) NOT NULL
);
CREATE TABLE IF NOT EXISTS numbers (
    prefix VARCHAR(32) PRIMARY KEY,
    band_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS carriers (
    id INTEGER PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS rates (
    band_id INTEGER NOT NULL,
    carrier_id INTEGER NOT NULL,
    rate DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (band_id, carrier_id)
);
CREATE TABLE IF NOT EXISTS carrier_gateways (
    id INTEGER PRIMARY KEY,
    carrier_id INTEGER NOT NULL,
    address VARCHAR(64) NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    strip INTEGER NOT NULL DEFAULT 0,
    prefix VARCHAR(32) NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS carrier_gateway_health (
    gateway_id INTEGER PRIMARY KEY,
    up INTEGER NOT NULL,
    checked_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS overrides (
    prefix VARCHAR(32) NOT NULL,
    carrier_id INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (prefix, carrier_id)
);

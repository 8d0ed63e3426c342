"""The vitals tables (CONTRACT 8), one migration for each store, appended at the end of
services/sqlite_schema.py's and services/postgres_schema.py's MIGRATIONS.

- `vitals_readings`: every reading, kept VITALS_RETENTION_HOURS (by measuredAt);
- `vitals_latest`: the newest reading of each patient and kind (what `vitals.latest` and a
  new `vitals.subscribe` read), written with the readings;
- `devices`: the registry (status, patient, battery, last seen);
- `threshold_rules`, and `threshold_rules_seeded` (hospitals whose defaults were stored once,
  so that deleted defaults stay deleted);
- `rule_episodes`: per patient and alert type, the newest rule alert and its episode number.
"""

from __future__ import annotations

SQLITE = """
CREATE TABLE vitals_readings (
    n INTEGER PRIMARY KEY,
    hospital_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    measured_ts REAL NOT NULL
);
CREATE INDEX vitals_readings_by_patient
    ON vitals_readings (hospital_id, patient_id, measured_ts, n);
CREATE INDEX vitals_readings_by_time ON vitals_readings (measured_ts);
CREATE TABLE vitals_latest (
    hospital_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT NOT NULL,
    value REAL NOT NULL,
    measured_ts REAL NOT NULL,
    PRIMARY KEY (hospital_id, patient_id, kind)
);
CREATE TABLE devices (
    hospital_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    patient_id TEXT,
    status TEXT NOT NULL,
    battery INTEGER,
    detail TEXT,
    last_seen_ts REAL NOT NULL,
    updated_ts REAL NOT NULL,
    PRIMARY KEY (hospital_id, device_id)
);
CREATE INDEX devices_by_seen ON devices (last_seen_ts) WHERE patient_id IS NOT NULL;
CREATE TABLE threshold_rules (
    hospital_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (hospital_id, rule_id)
);
CREATE TABLE threshold_rules_seeded (
    hospital_id TEXT PRIMARY KEY
);
CREATE TABLE rule_episodes (
    hospital_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    episode INTEGER NOT NULL,
    PRIMARY KEY (hospital_id, patient_id, alert_type)
);
"""

POSTGRES = """
CREATE TABLE vitals_readings (
    n bigserial PRIMARY KEY,
    hospital_id text NOT NULL,
    patient_id text NOT NULL,
    device_id text NOT NULL,
    kind text NOT NULL,
    value double precision NOT NULL,
    measured_ts double precision NOT NULL
);
CREATE INDEX vitals_readings_by_patient
    ON vitals_readings (hospital_id, patient_id, measured_ts, n);
CREATE INDEX vitals_readings_by_time ON vitals_readings (measured_ts);
CREATE TABLE vitals_latest (
    hospital_id text NOT NULL,
    patient_id text NOT NULL,
    kind text NOT NULL,
    device_id text NOT NULL,
    value double precision NOT NULL,
    measured_ts double precision NOT NULL,
    PRIMARY KEY (hospital_id, patient_id, kind)
);
CREATE TABLE devices (
    hospital_id text NOT NULL,
    device_id text NOT NULL,
    patient_id text,
    status text NOT NULL,
    battery integer,
    detail text,
    last_seen_ts double precision NOT NULL,
    updated_ts double precision NOT NULL,
    PRIMARY KEY (hospital_id, device_id)
);
CREATE INDEX devices_by_seen ON devices (last_seen_ts) WHERE patient_id IS NOT NULL;
CREATE TABLE threshold_rules (
    hospital_id text NOT NULL,
    rule_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (hospital_id, rule_id)
);
CREATE TABLE threshold_rules_seeded (
    hospital_id text PRIMARY KEY
);
CREATE TABLE rule_episodes (
    hospital_id text NOT NULL,
    patient_id text NOT NULL,
    alert_type text NOT NULL,
    alert_id text NOT NULL,
    episode integer NOT NULL,
    PRIMARY KEY (hospital_id, patient_id, alert_type)
);
"""

"""The PostgreSQL schema: its migrations, applied at start-up exactly once however many nodes
start at the same moment.

Each node takes the same transaction-scoped advisory lock before it reads
`schema_migrations`, so the first applies what is missing and the others, queued on the lock,
find it done. A migration, its row in `schema_migrations` and the lock share one transaction:
a node that dies halfway leaves nothing behind and releases the lock. A database from a newer
version than this code knows is refused rather than guessed at.

The schema mirrors the SQLite one (sqlite_schema.py) with one difference that the cluster
needs: event positions are per hospital. `event_counters` holds each hospital's last position;
a commit moves it forward by exactly the number of events it inserts, under the row's lock, so
a hospital's stream has no gap and no reuse whichever node writes (see `alertwire_commit`).
Since migration 2 the same call announces each event it commits (NOTIFY, delivered with the
commit; services/bus_postgres.py explains why there); since migration 3 it also claims the
batch's createAlert idempotency keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services import device_events, vitals_schema
from services.sqlite_schema import SchemaError

if TYPE_CHECKING:
    from services.postgres_pool import Connection

# "alertwire schema" as a number: any 64-bit key that no other user of the database takes.
MIGRATION_LOCK = 0x616C_6572_7477_6972

# The SQLSTATE alertwire_commit raises when an alert's stored version is not the one a change
# started from (class "AW" is not one of PostgreSQL's).
VERSION_CONFLICT = "AW409"

_COMMIT_FUNCTION = """
{create} FUNCTION alertwire_commit(
    c_hospital text[], c_from bigint[], c_to bigint[],
    a_id text[], a_hospital text[], a_status text[], a_priority text[],
    a_created float8[], a_responded float8[], a_due float8[],
    a_version integer[], a_expected integer[], a_body text[],
    e_hospital text[], e_seq bigint[], e_alert text[], e_type text[], e_actor text[],
    e_ts float8[], e_detail text[], e_payload bytea[]{key_params}
) RETURNS TABLE (counter_hospital text, counter_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    updated bigint;
    inserted bigint;{key_declare}{declare}
BEGIN
    -- A hospital's first events create its counter; a second first writer waits on the key.
    INSERT INTO event_counters (hospital_id, last_seq)
        SELECT t.h, 0 FROM unnest(c_hospital, c_from) AS t(h, f) WHERE t.f = 0
        ORDER BY t.h COLLATE "C"
        ON CONFLICT DO NOTHING;
    -- Writers of a hospital queue here, always in the same order (no deadlock).
    PERFORM 1 FROM event_counters c WHERE c.hospital_id = ANY(c_hospital)
        ORDER BY c.hospital_id COLLATE "C" FOR UPDATE;
    -- Someone else wrote since the caller numbered its events: nothing is written, and the
    -- caller gets the current positions to number them again.
    IF EXISTS (SELECT 1 FROM unnest(c_hospital, c_from) AS t(h, f)
               JOIN event_counters c ON c.hospital_id = t.h WHERE c.last_seq <> t.f) THEN
        RETURN QUERY SELECT c.hospital_id, c.last_seq FROM event_counters c
            WHERE c.hospital_id = ANY(c_hospital);
        RETURN;
    END IF;
    UPDATE event_counters c SET last_seq = t.s
        FROM unnest(c_hospital, c_to) AS t(h, s) WHERE c.hospital_id = t.h;
    UPDATE alerts a SET status = t.status, priority = t.priority, responded_ts = t.responded,
            escalation_due = t.due, version = t.version, body = t.body
        FROM unnest(a_id, a_status, a_priority, a_responded, a_due, a_version, a_expected,
                    a_body) AS t(id, status, priority, responded, due, version, expected, body)
        WHERE a.id = t.id AND t.expected > 0 AND a.version = t.expected;
    GET DIAGNOSTICS updated = ROW_COUNT;
    INSERT INTO alerts (id, hospital_id, status, priority, created_ts, responded_ts,
                        escalation_due, version, body)
        SELECT t.id, t.hospital, t.status, t.priority, t.created, t.responded, t.due,
               t.version, t.body
        FROM unnest(a_id, a_hospital, a_status, a_priority, a_created, a_responded, a_due,
                    a_version, a_expected, a_body)
             WITH ORDINALITY AS t(id, hospital, status, priority, created, responded, due,
                                  version, expected, body, ord)
        WHERE t.expected = 0 ORDER BY t.ord
        ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF updated + inserted <> cardinality(a_id) THEN
        RAISE EXCEPTION 'an alert was changed by another writer' USING ERRCODE = 'AW409';
    END IF;{keys}
    -- Each hospital's events are exactly the positions c_from + 1 .. c_to (the primary key
    -- forbids repeats): the counter and the log cannot disagree.
    IF cardinality(e_seq) <> (SELECT COALESCE(SUM(t.s - t.f), 0)
                              FROM unnest(c_from, c_to) AS t(f, s))
       OR EXISTS (SELECT 1 FROM unnest(e_hospital, e_seq) AS e(h, s)
                  LEFT JOIN unnest(c_hospital, c_from, c_to) AS t(h, f, s) ON t.h = e.h
                  WHERE t.h IS NULL OR e.s <= t.f OR e.s > t.s) THEN
        RAISE EXCEPTION 'event positions do not match the counters' USING ERRCODE = 'AW500';
    END IF;
    INSERT INTO events (hospital_id, seq, alert_id, type, actor_id, occurred_ts, detail,
                        payload)
        SELECT * FROM unnest(e_hospital, e_seq, e_alert, e_type, e_actor, e_ts, e_detail,
                             e_payload);{notify}
END
$$
"""

# The channel a schema's commits are announced on: one per schema, so that databases shared
# by several deployments (or test runs, a schema each) do not wake each other. A channel name
# is an identifier (at most 63 bytes): a long schema name is replaced by its digest.
CHANNEL_FUNCTION = """
CREATE FUNCTION alertwire_channel() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'alertwire_events:' || CASE WHEN octet_length(current_schema()) <= 40
        THEN current_schema() ELSE md5(current_schema()) END
$$;
"""

# Each event of the batch is announced inside the commit (services/bus_postgres.py says why):
# PostgreSQL delivers a NOTIFY when, and only if, its transaction commits, in commit order.
# The payload is the event itself when it fits (seq, hospital, alert, then the wire payload,
# tab-separated: ids cannot hold a tab, and the JSON is last), else only where it is.
NOTIFY_EVENTS = """
    FOR i IN 1 .. cardinality(e_seq) LOOP
        message := e_seq[i] || E'\\t' || e_hospital[i] || E'\\t' || e_alert[i] || E'\\t'
            || convert_from(e_payload[i], 'UTF8');
        IF octet_length(message) >= 7500 THEN
            message := e_seq[i] || E'\\t' || e_hospital[i];
        END IF;
        PERFORM pg_notify(channel, message);
    END LOOP;"""


# Since migration 3: the batch's idempotency keys (CONTRACT 7), claimed in the same
# transaction as their alerts. A key another writer holds (and that has not expired) is not
# taken over: nothing is written, and the caller runs its batch again, finding the key. A
# writer claiming a key at the same moment waits on the primary key until the first commits.
KEY_PARAMS = ",\n    k_hospital text[], k_key text[], k_alert text[], k_ts float8[]"
KEY_DECLARE = "\n    claimed bigint;"
# 86400: IDEMPOTENCY_TTL_S written out, since a migration must not change once applied
# (tests/services/test_idempotency.py checks that they agree).
CLAIM_KEYS = """
    INSERT INTO idempotency_keys AS k (hospital_id, idempotency_key, alert_id, created_ts)
        SELECT * FROM unnest(k_hospital, k_key, k_alert, k_ts)
        ON CONFLICT (hospital_id, idempotency_key) DO UPDATE
            SET alert_id = excluded.alert_id, created_ts = excluded.created_ts
            WHERE k.created_ts < excluded.created_ts - 86400;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed <> cardinality(k_key) THEN
        RAISE EXCEPTION 'an idempotency key was claimed by another writer' USING ERRCODE = 'AW409';
    END IF;"""


def commit_function(announce: bool, keys: bool = False) -> str:
    """`alertwire_commit` as migration 1 created it, as migration 2 redefines it (the same
    transaction, each event announced at its end), or as migration 3 does (announced, and
    claiming the batch's idempotency keys)."""
    text = _COMMIT_FUNCTION
    for name, value in (
        ("{key_params}", KEY_PARAMS if keys else ""),
        ("{key_declare}", KEY_DECLARE if keys else ""),
        ("{keys}", CLAIM_KEYS if keys else ""),
    ):
        text = text.replace(name, value)
    if not announce:
        return text.replace("{create}", "CREATE").replace("{declare}", "").replace("{notify}", "")
    declare = "\n    channel text := alertwire_channel();\n    message text;"
    create = "CREATE" if keys else "CREATE OR REPLACE"
    return (
        text.replace("{create}", create)
        .replace("{declare}", declare)
        .replace("{notify}", NOTIFY_EVENTS)
    )


MIGRATIONS: list[str] = [
    # 1: alerts (current state), the append-only event log, per-hospital positions and
    # prune marks, and the one-call commit of a write batch.
    """
    CREATE TABLE alerts (
        n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        hospital_id text NOT NULL,
        status text NOT NULL,
        priority text NOT NULL,
        created_ts double precision NOT NULL,
        responded_ts double precision,
        escalation_due double precision,
        version integer NOT NULL,
        body text NOT NULL
    );
    CREATE INDEX alerts_by_hospital ON alerts (hospital_id, n);
    CREATE INDEX alerts_open ON alerts (hospital_id, status);
    CREATE INDEX alerts_recent ON alerts (hospital_id, created_ts);
    CREATE INDEX alerts_escalating ON alerts (escalation_due) WHERE escalation_due IS NOT NULL;
    CREATE TABLE events (
        hospital_id text NOT NULL,
        seq bigint NOT NULL,
        alert_id text NOT NULL,
        type text NOT NULL,
        actor_id text NOT NULL,
        occurred_ts double precision NOT NULL,
        detail text,
        payload bytea NOT NULL,
        PRIMARY KEY (hospital_id, seq)
    );
    CREATE INDEX events_by_alert ON events (alert_id, seq);
    CREATE INDEX events_by_time ON events (occurred_ts);
    CREATE TABLE event_counters (
        hospital_id text PRIMARY KEY,
        last_seq bigint NOT NULL
    );
    CREATE TABLE prune_marks (
        hospital_id text PRIMARY KEY,
        pruned_through bigint NOT NULL
    );
    """
    + commit_function(announce=False),
    # 2: each commit announces its events (NOTIFY) on the schema's channel, atomically with it.
    CHANNEL_FUNCTION + commit_function(announce=True),
    # 3: createAlert idempotency keys (CONTRACT 7), kept 24 h (postgres_retention.py), and a
    # commit that claims them with the batch's alerts. It takes four more arguments, so it is
    # a function beside the old one, which stays for nodes still running the previous
    # version during a rolling upgrade (they write no keys).
    """
    CREATE TABLE idempotency_keys (
        hospital_id text NOT NULL,
        idempotency_key text NOT NULL,
        alert_id text NOT NULL,
        created_ts double precision NOT NULL,
        PRIMARY KEY (hospital_id, idempotency_key)
    );
    CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_ts);
    """
    + commit_function(announce=True, keys=True),
    # 4: token revocations (admin.revokeTokens, CONTRACT 11): a user's tokens issued before a
    # moment (kind "subject", `issued_before`), or one token by its jti (kind "token").
    """
    CREATE TABLE token_revocations (
        kind text NOT NULL CHECK (kind IN ('subject', 'token')),
        value text NOT NULL,
        issued_before double precision,
        revoked_ts double precision NOT NULL,
        revoked_by text NOT NULL,
        PRIMARY KEY (kind, value)
    );
    """,
    # 5 (integrations, CONTRACT 9): API keys (a hash of each), responses remembered for
    # inbound Idempotency-Keys, outbound webhook endpoints with their delivery cursor, and
    # every delivery attempt (services/integration_store.py).
    """
    CREATE TABLE api_keys (
        key_id text PRIMARY KEY,
        hospital_id text NOT NULL,
        name text NOT NULL,
        prefix text NOT NULL,
        key_hash text NOT NULL UNIQUE,
        scopes text NOT NULL,
        signing_secret text,
        created_ts double precision NOT NULL,
        last_used_ts double precision,
        revoked_ts double precision
    );
    CREATE INDEX api_keys_by_hospital ON api_keys (hospital_id, created_ts);
    CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
    CREATE TABLE inbound_responses (
        hospital_id text NOT NULL,
        idempotency_key text NOT NULL,
        fingerprint text NOT NULL,
        status integer NOT NULL,
        body bytea NOT NULL,
        created_ts double precision NOT NULL,
        PRIMARY KEY (hospital_id, idempotency_key)
    );
    CREATE INDEX inbound_responses_by_time ON inbound_responses (created_ts);
    CREATE TABLE webhooks (
        webhook_id text PRIMARY KEY,
        hospital_id text NOT NULL,
        url text NOT NULL,
        events text NOT NULL,
        description text,
        secret text NOT NULL,
        created_ts double precision NOT NULL,
        enabled boolean NOT NULL,
        cursor bigint NOT NULL,
        attempt integer NOT NULL,
        next_attempt_ts double precision NOT NULL,
        failing_since double precision
    );
    CREATE INDEX webhooks_by_hospital ON webhooks (hospital_id, created_ts);
    CREATE TABLE webhook_attempts (
        n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id text NOT NULL,
        event_id text NOT NULL,
        attempt integer NOT NULL,
        status text NOT NULL,
        http_status integer,
        error text,
        at double precision NOT NULL
    );
    CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, n);
    CREATE INDEX webhook_attempts_by_time ON webhook_attempts (at);
    """,
    # 6: notifications (CONTRACT 10): each user's inbox, a domain rule's notification written
    # once per recipient (dedupe_key), and the staff directory (users seen, by hospital) that
    # finds the charge nurses and admins to notify. Inserts take NOTIFICATION_LOCK so that ids
    # are handed out in commit order (a subscriber resuming after an id misses none).
    """
    CREATE TABLE notifications (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient text NOT NULL,
        kind text NOT NULL,
        title text NOT NULL,
        message text,
        hospital_id text,
        alert_id text,
        severity text,
        created_ts double precision NOT NULL,
        read_ts double precision,
        dedupe_key text
    );
    CREATE INDEX notifications_by_recipient ON notifications (recipient, id);
    CREATE INDEX notifications_unread ON notifications (recipient) WHERE read_ts IS NULL;
    CREATE UNIQUE INDEX notifications_once ON notifications (recipient, dedupe_key);
    CREATE TABLE staff_directory (
        hospital_id text NOT NULL,
        sub text NOT NULL,
        role text NOT NULL,
        name text,
        seen_ts double precision NOT NULL,
        PRIMARY KEY (hospital_id, sub)
    );
    CREATE INDEX staff_directory_by_sub ON staff_directory (sub);
    """,
    # 7: devices, vitals and threshold rules (CONTRACT 8; services/vitals_schema.py).
    vitals_schema.POSTGRES,
    # 8: the device event log and each webhook endpoint's cursor over it (outbound
    # device.* webhooks; services/device_events.py).
    device_events.POSTGRES,
    # 9: notifications from the event log: the sweep's cursor per hospital
    # (services/notification_cursor.py), starting at each hospital's last event, so an
    # upgraded database does not notify anyone of its past.
    """
    CREATE TABLE notification_cursors (
        hospital_id text PRIMARY KEY,
        seq bigint NOT NULL
    );
    INSERT INTO notification_cursors (hospital_id, seq)
        SELECT hospital_id, last_seq FROM event_counters;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))


async def migrate(conn: Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it had."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = await schema_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaError(
                f"the database has schema version {found}; this server knows up to {SCHEMA_VERSION}"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            await conn.execute(MIGRATIONS[version - 1])
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    return found

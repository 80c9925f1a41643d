"""`tradecore db upgrade` creates the event store schema, and running it again changes nothing."""

from __future__ import annotations

import psycopg
import pytest

from infra.migrations import current, head_revision, upgrade


def schema_of(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ).fetchall()


def test_upgrade_on_an_empty_database_reaches_head_and_a_second_run_is_a_no_op(
    database: str,
) -> None:
    messages: list[str] = []
    upgrade(database, "head", messages.append)
    first = schema_of(database)
    upgrade(database, "head", messages.append)
    assert current(database) == head_revision()
    assert schema_of(database) == first
    assert messages[-1] == f"database schema already at {head_revision()}"


def test_events_table_has_the_eventsourcing_recorder_columns_and_keys(
    migrated_database: str,
) -> None:
    columns = {(t, c): d for t, c, d in schema_of(migrated_database)}
    assert columns[("events", "originator_id")] == "uuid"
    assert columns[("events", "originator_version")] == "bigint"
    assert columns[("events", "topic")] == "text"
    assert columns[("events", "state")] == "bytea"
    assert columns[("events", "notification_id")] == "bigint"
    with psycopg.connect(migrated_database) as conn:
        pk = conn.execute(
            "SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'events'::regclass AND i.indisprimary"
        ).fetchone()
        extension = conn.execute(
            "SELECT extname FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
    assert pk == (["originator_id", "originator_version"],)
    assert extension == ("timescaledb",)


def test_the_event_log_refuses_updates_and_deletes(migrated_database: str) -> None:
    with psycopg.connect(migrated_database) as conn:
        conn.execute(
            "INSERT INTO events (originator_id, originator_version, topic, state, notification_id,"
            " event_id, event_type, schema_version, occurred_at, occurred_at_ns, command_id,"
            " correlation_id, writer_epoch, prev_hash, hash) VALUES (gen_random_uuid(), 1, 't',"
            " '\\x00', 1, gen_random_uuid(), 'T', 1, now(), 0, 'c', 'c', 1, '\\x00', '\\x01')"
        )
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("UPDATE events SET topic = 'forged'")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("DELETE FROM events")
        conn.rollback()
        assert conn.execute("SELECT topic FROM events").fetchall() == [("t",)]

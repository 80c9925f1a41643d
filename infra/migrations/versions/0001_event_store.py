"""The event store: one ordered, hash-chained log, the writer fence and core snapshots.

The `events` table is a superset of the `eventsourcing` library's PostgreSQL application
recorder layout (originator_id, originator_version, topic, state, notification_id; primary
key on the first two; unique notification_id), so that library can read our log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import warnings

from alembic import op
from sqlalchemy import text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    available = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).scalar()
    if available:
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    else:
        warnings.warn(
            "TimescaleDB is not installed on this PostgreSQL server: read models use plain "
            "tables and date_bin instead of hypertables and time_bucket.",
            stacklevel=1,
        )
    op.execute(
        """
        CREATE TABLE events (
            originator_id      uuid        NOT NULL,
            originator_version bigint      NOT NULL,
            topic              text        NOT NULL,
            state              bytea       NOT NULL,
            notification_id    bigint      NOT NULL,
            event_id           uuid        NOT NULL,
            event_type         text        NOT NULL,
            schema_version     integer     NOT NULL,
            occurred_at        timestamptz NOT NULL,
            occurred_at_ns     bigint      NOT NULL,
            recorded_at        timestamptz NOT NULL DEFAULT now(),
            command_id         text        NOT NULL,
            correlation_id     text        NOT NULL,
            writer_epoch       bigint      NOT NULL,
            prev_hash          bytea       NOT NULL,
            hash               bytea       NOT NULL,
            PRIMARY KEY (originator_id, originator_version),
            CONSTRAINT events_notification_id_key UNIQUE (notification_id),
            CONSTRAINT events_event_id_key UNIQUE (event_id),
            CONSTRAINT events_position_positive CHECK (notification_id > 0)
        )
        """
    )
    op.execute("CREATE INDEX events_occurred_at_idx ON events (occurred_at)")
    op.execute("CREATE INDEX events_command_id_idx ON events (command_id)")
    op.execute(
        """
        CREATE TABLE event_store_writer (
            log_name    text        PRIMARY KEY,
            epoch       bigint      NOT NULL,
            holder      text        NOT NULL,
            acquired_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE core_snapshots (
            position    bigint      PRIMARY KEY,
            state_hash  text        NOT NULL,
            state       jsonb       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The log is append-only: rows are never updated or deleted by Tradecore.
    op.execute(
        """
        CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS core_snapshots")
    op.execute("DROP TABLE IF EXISTS event_store_writer")
    op.execute("DROP TABLE IF EXISTS events")
    op.execute("DROP FUNCTION IF EXISTS events_append_only()")

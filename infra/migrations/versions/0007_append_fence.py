"""A cheaper append: the writer fence as a statement trigger, and no unused command_id index.

The core used to append in four round trips (BEGIN, the epoch check, COPY, COMMIT). The
epoch check now runs inside the COPY itself: a BEFORE INSERT statement trigger on `events`
locks the writer row and refuses the statement when the session's claimed epoch
(`tradecore.writer_epoch`, set once by the writer when it takes the log) is no longer the
current one. So a single auto-committed COPY is fenced exactly as the explicit transaction
was: the lock is taken before any row is written and held until COMMIT, a newer writer's
epoch bump waits for it, and a displaced writer's statement fails and writes nothing.
Sessions that claim no epoch (migrations, tools, tests) are not affected.

`events_command_id_idx` was never read by any query, and it was a quarter of the server's
time per appended event; the idempotency guard is the unique `event_id`, which stays.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION events_writer_fence() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            claimed text := current_setting('tradecore.writer_epoch', true);
            log     text := current_setting('tradecore.writer_log', true);
        BEGIN
            IF claimed IS NULL OR claimed = '' THEN
                RETURN NULL;
            END IF;
            PERFORM 1 FROM event_store_writer
                WHERE log_name = log AND epoch = claimed::bigint
                FOR NO KEY UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'writer epoch % of log % was displaced by a newer writer',
                    claimed, log
                    USING ERRCODE = 'TCF01';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_writer_fence BEFORE INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_writer_fence()"
    )
    op.execute("DROP INDEX IF EXISTS events_command_id_idx")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS events_command_id_idx ON events (command_id)")
    op.execute("DROP TRIGGER IF EXISTS events_writer_fence ON events")
    op.execute("DROP FUNCTION IF EXISTS events_writer_fence()")

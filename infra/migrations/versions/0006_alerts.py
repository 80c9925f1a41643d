"""Price alerts: the `alerts` read model, and a partial index over the log's alert events.

`alerts` is built by `projections.alerts` (rows from the events only, so a rebuilt table
equals the incrementally built one). The partial index lets the alert evaluator read every
alert event at start without scanning the log; it holds alert events only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE alerts (
            alert_id         text        PRIMARY KEY,
            account_id       text        NOT NULL,
            symbol           text        NOT NULL,
            condition        text        NOT NULL,
            level            numeric,
            pct              numeric,
            window_s         integer,
            price_at_create  numeric     NOT NULL,
            status           text        NOT NULL,
            created_at       timestamptz NOT NULL,
            created_position bigint      NOT NULL,
            triggered_at     timestamptz,
            trigger_price    numeric,
            trigger_trade_id bigint,
            reference_price  numeric,
            canceled_at      timestamptz,
            updated_at       timestamptz NOT NULL,
            updated_position bigint      NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX alerts_account_idx ON alerts (account_id, created_position)")
    op.execute(
        "CREATE INDEX events_alert_events_idx ON events (notification_id) "
        "WHERE event_type LIKE 'Alert%'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS events_alert_events_idx")
    op.execute("DROP TABLE IF EXISTS alerts")

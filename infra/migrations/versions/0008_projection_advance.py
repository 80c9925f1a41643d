"""A projector's position moves inside its own write script, and refuses a moved position.

The projector runner sends a batch's writes and the position update as one simple-query
script (one implicit transaction, one round trip: `infra.readmodels.DeferredWrites`). The
update must fail the whole script, not just match no row, when the stored position is no
longer the one the batch was built on (a rebuild or a second runner moved it): this
function raises SQLSTATE TCP01 then, so nothing of the batch is written.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION tradecore_advance_projection(
            projector text, after bigint, upto bigint, at timestamptz
        ) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE projection_positions SET position = upto, event_at = at, updated_at = now()
                WHERE name = projector AND position = after;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'projector % is no longer at position %', projector, after
                    USING ERRCODE = 'TCP01';
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION tradecore_advance_projection(text, bigint, bigint, timestamptz)")

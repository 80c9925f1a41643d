"""Core snapshots as compressed JSON in bytea: jsonb refuses values over 256 MB.

New snapshots go to `state_zlib` (zlib-compressed canonical JSON); `state` (jsonb) stays for
the snapshots written before this revision and is now optional.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE core_snapshots ADD COLUMN state_zlib bytea")
    op.execute("ALTER TABLE core_snapshots ALTER COLUMN state DROP NOT NULL")
    op.execute(
        "ALTER TABLE core_snapshots ADD CONSTRAINT core_snapshots_has_state "
        "CHECK (state IS NOT NULL OR state_zlib IS NOT NULL)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM core_snapshots WHERE state IS NULL")
    op.execute("ALTER TABLE core_snapshots DROP CONSTRAINT core_snapshots_has_state")
    op.execute("ALTER TABLE core_snapshots ALTER COLUMN state SET NOT NULL")
    op.execute("ALTER TABLE core_snapshots DROP COLUMN state_zlib")

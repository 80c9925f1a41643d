"""Users of the gateway and their API keys (passwords and key secrets stored hashed only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE users (
            username      text        PRIMARY KEY,
            password_hash text,
            role          text        NOT NULL CHECK (role IN ('trader', 'auditor', 'admin')),
            accounts      text[]      NOT NULL DEFAULT '{}',
            disabled      boolean     NOT NULL DEFAULT false,
            created_at    timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id      text        PRIMARY KEY,
            username    text        NOT NULL REFERENCES users (username),
            secret_hash bytea       NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        )
        """
    )
    op.execute("CREATE INDEX api_keys_username_idx ON api_keys (username)")


def downgrade() -> None:
    op.execute("DROP TABLE api_keys")
    op.execute("DROP TABLE users")

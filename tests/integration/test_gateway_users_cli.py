"""`tradecore users add|list|disable` against the real database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tradecore.cli_users import app

pytestmark = pytest.mark.integration


def test_users_are_added_listed_and_disabled(
    migrated_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADECORE_DATABASE_URL", migrated_database)
    runner = CliRunner()
    added = runner.invoke(
        app, ["add", "carol", "--account", "carol-1", "--password-stdin"], input="long-password\n"
    )
    assert added.exit_code == 0, added.output
    bot = runner.invoke(app, ["add", "bot", "--account", "carol-1", "--api-key"])
    assert "client_secret=" in bot.output
    twice = runner.invoke(app, ["add", "carol", "--password-stdin"], input="long-password\n")
    assert twice.exit_code == 1 and "exists already" in twice.output
    assert runner.invoke(app, ["disable", "carol"]).exit_code == 0
    listed = runner.invoke(app, ["list"]).output.splitlines()
    assert listed == ["bot\ttrader\tcarol-1\tenabled", "carol\ttrader\tcarol-1\tdisabled"]

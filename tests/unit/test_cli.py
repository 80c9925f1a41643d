"""Every `tradecore` subcommand answers --help."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tradecore.cli import app

runner = CliRunner()


def command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_the_command_tree_has_the_stack_db_and_up_commands() -> None:
    names = {" ".join(p) for p in command_paths()}
    assert {"stack up", "stack down", "stack status", "db upgrade", "up"} <= names


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "tradecore")
def test_every_subcommand_has_help(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


def test_a_production_setting_with_default_secrets_is_refused_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADECORE_ENV", "production")
    result = runner.invoke(app, ["stack", "status"])
    assert result.exit_code == 2
    assert "refuses the development default" in result.output

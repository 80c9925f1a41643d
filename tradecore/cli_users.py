"""`tradecore users`: add, list and disable the gateway's users (and give bots API keys)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from redis.asyncio import Redis

from gateway.ports import Role
from gateway.tokens import TokenConfig
from infra.auth_store import RedisTokenRevocations
from infra.settings import Settings
from infra.users import PostgresUserDirectory, UserError

app = typer.Typer(
    help="Users of the gateway: traders (own accounts), auditors (read all), admins.",
    no_args_is_help=True,
)

T = TypeVar("T")


def _settings() -> Settings:
    from tradecore.cli import settings_or_exit  # the command's own helper; lazy: no cycle

    return settings_or_exit()


def _run(settings: Settings, work: Callable[[PostgresUserDirectory], Awaitable[T]]) -> T:
    async def main() -> T:
        users = PostgresUserDirectory(settings.dsn)
        try:
            await users.open()
        except Exception as exc:
            typer.secho(
                f"error: cannot reach PostgreSQL ({exc}); is the stack up "
                "(`tradecore stack up`) and migrated (`tradecore db upgrade`)?",
                fg="red",
                err=True,
            )
            raise typer.Exit(1) from exc
        try:
            return await work(users)
        except UserError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        finally:
            await users.close()

    return asyncio.run(main())


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[Role, typer.Option(help="trader, auditor or admin")] = Role.TRADER,
    account: Annotated[
        list[str] | None, typer.Option("--account", "-a", help="an account it owns (repeat)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    api_key: Annotated[
        bool, typer.Option("--api-key", help="also create an API key (printed once)")
    ] = False,
) -> None:
    """Add a user. Without --password-stdin the password is asked for, unless --api-key
    makes it a bot that only signs in with its key."""
    settings = _settings()
    accounts = account or []
    if role is not Role.TRADER and accounts:
        raise typer.BadParameter("only traders own accounts", param_hint="--account")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not api_key:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 8:
        raise typer.BadParameter("at least 8 characters", param_hint="password")

    async def work(users: PostgresUserDirectory) -> None:
        await users.add(username, role, accounts, password)
        typer.echo(f"added {username} ({role.value}; accounts: {', '.join(accounts) or '-'})")
        if api_key:
            key = await users.add_api_key(username)
            typer.echo(f"API key: client_id={key.key_id} client_secret={key.secret}")
            typer.echo("the secret is shown only now; use the client_credentials grant")

    _run(settings, work)


@app.command("list")
def list_users() -> None:
    """Every user: name, role, accounts, and whether it is disabled."""

    async def work(users: PostgresUserDirectory) -> None:
        for user in await users.list():
            state = "disabled" if user.disabled else "enabled"
            accounts = ",".join(sorted(user.accounts)) or "-"
            typer.echo(f"{user.username}\t{user.role.value}\t{accounts}\t{state}")

    _run(_settings(), work)


@app.command("disable")
def disable(username: Annotated[str, typer.Argument(help="login name")]) -> None:
    """The user can no longer log in, and every token it holds is revoked at once."""
    settings = _settings()

    async def work(users: PostgresUserDirectory) -> None:
        await users.disable(username)
        redis = Redis.from_url(settings.redis_dsn)
        try:
            ttl = TokenConfig(secret="").refresh_ttl_s
            await RedisTokenRevocations(redis).revoke_user(username, ttl)
        finally:
            await redis.aclose()
        typer.echo(f"disabled {username}; its tokens are revoked")

    _run(settings, work)

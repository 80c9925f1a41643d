"""The `tradecore` command: the local stack, migrations, and running the system."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from infra.settings import Settings, load_settings
from infra.stack import Stack, StackError
from tradecore.cli_projections import app as projections_app
from tradecore.cli_users import app as users_app

app = typer.Typer(
    help="Tradecore, an event-sourced trading core. Settings come from TRADECORE_* variables "
    "or .env (see README.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
stack_app = typer.Typer(
    help="The local service stack (PostgreSQL+TimescaleDB, Redis, Kafka) under .stack/, no Docker. "
    "Ports: TRADECORE_PG_PORT, TRADECORE_REDIS_PORT, TRADECORE_KAFKA_PORT, "
    "TRADECORE_KAFKA_CONTROLLER_PORT; directory: TRADECORE_STACK_DIR.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
audit_app = typer.Typer(help="Auditing the event log.", no_args_is_help=True)
core_app = typer.Typer(help="The trading core's state.", no_args_is_help=True)
engine_app = typer.Typer(
    help="The matching engine offline, without a database.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(core_app, name="core")
app.add_typer(engine_app, name="engine")
app.add_typer(users_app, name="users")
app.add_typer(projections_app, name="projections")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            reason = error["msg"].removeprefix("Value error, ")
            typer.secho(
                f"error: invalid settings{f' ({where})' if where else ''}: {reason}",
                fg="red",
                err=True,
            )
        raise typer.Exit(2) from exc


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(1)


def say(message: str) -> None:
    typer.echo(message)
    sys.stdout.flush()


@stack_app.command("up")
def stack_up() -> None:
    """Install what is missing and start every service; a second run is harmless and fast."""
    settings = settings_or_exit()
    started = time.monotonic()
    try:
        results = Stack(settings, say).up()
    except StackError as exc:
        raise fail(str(exc)) from exc
    if all(r.outcome != "started" for r in results):
        say(f"stack already up: nothing to install or start ({time.monotonic() - started:.1f} s)")
    else:
        say(f"stack up in {time.monotonic() - started:.1f} s")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every service the stack started; no process of ours is left behind."""
    settings = settings_or_exit()
    try:
        Stack(settings, say).down()
    except StackError as exc:
        raise fail(str(exc)) from exc


@stack_app.command("status")
def stack_status() -> None:
    """Print each service's state, address and version; exit 1 unless all are up."""
    settings = settings_or_exit()
    statuses = Stack(settings, say).status()
    for st in statuses:
        line = f"{st.name:9} {st.state:11} {st.address:22} {st.version}"
        say(line + (f"  ({st.detail})" if st.detail else ""))
    if any(st.state not in ("running", "external") for st in statuses):
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the event store and read-model schemas; idempotent."""
    from infra.migrations import upgrade

    settings = settings_or_exit()
    try:
        upgrade(settings.dsn, revision, say)
    except Exception as exc:
        raise fail(
            f"migration failed: {exc}. Is PostgreSQL up? Try `tradecore stack status`."
        ) from exc


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    from infra.migrations import current

    settings = settings_or_exit()
    say(current(settings.dsn) or "(empty database)")


@app.command("up")
def up(
    stack: Annotated[
        bool, typer.Option(help="Start the local service stack first (off: use running services).")
    ] = True,
) -> None:
    """Run the whole system: the stack, migrations, then the Tradecore processes (Ctrl-C stops)."""
    from tradecore.bootstrap import run_system

    settings = settings_or_exit()
    try:
        run_system(settings, say, start_stack=stack)
    except StackError as exc:
        raise fail(str(exc)) from exc


@app.command("serve")
def serve() -> None:
    """Run only the HTTP gateway against services that are already up."""
    from tradecore.bootstrap import run_system

    settings = settings_or_exit()
    run_system(settings, say, start_stack=False, migrate=False)


STOP_GRACE_S = 2.0  # how long the market-data processes get to stop on a Ctrl-C of their own


@app.command("market-data")
def market_data(
    procs: Annotated[int, typer.Option(min=1, help="Processes sharing the port.")] = 1,
    port: Annotated[
        int | None, typer.Option(help="Port (default: the gateway's port + 1).")
    ] = None,
) -> None:
    """Serve live channels (/ws, no commands) from more processes, beside a running gateway.

    Subscribers connect here instead of to the gateway; the kernel spreads them over the
    processes (SO_REUSEPORT), each fed by Redis. Commands are refused with a reason."""
    import multiprocessing

    from infra.stack.base import port_in_use
    from tradecore.bootstrap import serve_market_data

    settings = settings_or_exit()
    host, chosen = settings.http_host, port or settings.http_port + 1
    if port_in_use(host, chosen):
        raise fail(f"port {chosen} on {host} is taken: stop what runs there or pass --port")
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=serve_market_data, args=(settings, host, chosen), daemon=True)
        for _ in range(procs)
    ]
    for worker in workers:
        worker.start()
    say(f"market data: {procs} process(es) on ws://{host}:{chosen}/ws; press Ctrl-C to stop")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # `kill`, a service manager: as Ctrl-C
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches every process; a signal sent to this one alone does
        # not: after a moment, each process still serving is asked to stop (once: uvicorn
        # takes a second signal as "stop now, skip the shutdown").
        for worker in workers:
            worker.join(STOP_GRACE_S)
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.kill()
                worker.join()
    failed = [w.exitcode for w in workers if w.exitcode not in (0, None, -2)]
    if failed:
        raise fail(f"a market-data process stopped with exit code {failed[0]}: see the log above")


@app.command("simulate")
def simulate(
    seed: Annotated[int, typer.Option(help="Seed of the order flow (same seed, same flow).")] = 7,
    rate: Annotated[
        float, typer.Option(help="Commands per second in total; 0 = as fast as the core answers.")
    ] = 200.0,
    clients: Annotated[int, typer.Option(help="Concurrent simulated clients.")] = 8,
    symbols: Annotated[
        str, typer.Option(help="Comma-separated symbols (BTC-USD, ETH-USD, SOL-USD, ABC-USD, ...).")
    ] = "BTC-USD,ETH-USD,SOL-USD",
    traders: Annotated[int, typer.Option(help="Simulated accounts (40% market makers).")] = 20,
    count: Annotated[int | None, typer.Option(help="Stop after this many commands.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    acks: Annotated[
        Path | None,
        typer.Option(help="Append one JSON line per acknowledged command (id and positions)."),
    ] = None,
    snapshot_every: Annotated[int, typer.Option(help="Snapshot every N events.")] = 500_000,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema first.")] = True,
) -> None:
    """Run the core on the event store and drive it with a seeded demo market (Ctrl-C stops).

    Market makers quote around a random-walk mid, takers cross with IOC, FOK and market
    orders, quotes are canceled and amended. Progress is printed every 5 seconds.
    """
    import asyncio

    from commands.ports import WriterFenced
    from tradecore.market import MarketOptions, run_foreground

    settings = settings_or_exit()
    if migrate:
        from infra.migrations import upgrade

        try:
            upgrade(settings.dsn, "head", lambda _: None)
        except Exception as exc:
            raise fail(
                f"cannot reach or migrate the database: {exc}. "
                "Start the services with `tradecore stack up`."
            ) from exc
    options = MarketOptions(
        seed=seed,
        rate=rate,
        clients=clients,
        traders=traders,
        count=count,
        duration=duration,
        symbols=[s.strip().upper() for s in symbols.split(",") if s.strip()],
        acks=acks,
        snapshot_every=snapshot_every,
    )
    try:
        stats = asyncio.run(run_foreground(settings.dsn, options, say))
    except WriterFenced as exc:
        raise fail(f"{exc}. Only one core may write the log; stop the other one first.") from exc
    except KeyboardInterrupt:
        say("stopped")
        return
    except OSError as exc:
        raise fail(
            f"cannot reach PostgreSQL ({exc}). Start the services with `tradecore stack up`."
        ) from exc
    say(f"done: {stats.line()}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash-chained log; report the first altered, removed, inserted or moved row."""
    import asyncio

    from infra.audit import verify_log
    from infra.eventstore import PostgresEventStore

    settings = settings_or_exit()

    async def run() -> bool:
        store = PostgresEventStore(settings.dsn)
        await store.open()
        try:
            result = await verify_log(store, progress=lambda n: say(f"  {n:,} events verified"))
        finally:
            await store.close()
        if result.ok:
            say(f"log intact: {result.checked:,} events, hash chain unbroken")
        else:
            say(f"LOG TAMPERED at position {result.position}: {result.problem}")
            say(f"({result.checked:,} events before it verified)")
        return result.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


@core_app.command("verify")
def core_verify() -> None:
    """Replay the log from zero and compare the state hash with the snapshot and restart path."""
    import asyncio

    from commands.core import verify_replay
    from infra.eventstore import PostgresEventStore

    settings = settings_or_exit()

    async def run() -> bool:
        store = PostgresEventStore(settings.dsn)
        await store.open()
        try:
            say("replaying the whole log from position 0 ...")
            check = await verify_replay(store)
        finally:
            await store.close()
        say(f"replayed to position {check.position:,}: state {check.replayed_hash}")
        if check.snapshot_position is not None:
            same = check.snapshot_hash == check.replayed_at_snapshot
            say(
                f"snapshot at position {check.snapshot_position:,}: {check.snapshot_hash} "
                f"({'matches' if same else 'DIFFERS FROM'} the replay at that position)"
            )
        same = check.recovered_hash == check.replayed_hash
        say(
            f"snapshot + tail (restart path): {check.recovered_hash} "
            f"({'matches' if same else 'DIFFERS'})"
        )
        return check.ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


@engine_app.command("run")
def engine_run(
    commands_file: Annotated[
        typer.FileText, typer.Option("--commands", help="JSON lines of commands ('-' = stdin).")
    ],
) -> None:
    """Decide commands (JSON lines, docs/commands.md) and print their events as JSON lines.

    The same decision code as the live core, minus persistence. A line that is not a valid
    command is reported on stderr with its line number and reason, and changes nothing.
    """
    import json

    from commands.codec import CommandDecodeError, command_from_json
    from domain.alerts import Alerts, KnownMarket
    from domain.commands import ALERT_COMMANDS
    from domain.events import to_dict
    from domain.exchange import Exchange

    exchange = Exchange()
    alerts, known = Alerts(), KnownMarket((), {}, exchange.reference_price)
    sequence = 0
    errors = 0
    out = sys.stdout
    for number, line in enumerate(commands_file, start=1):
        if not line.strip():
            continue
        try:
            command = command_from_json(json.loads(line, parse_float=_refuse_float))
        except (CommandDecodeError, ValueError, TypeError) as exc:
            errors += 1
            reason = getattr(exc, "reason", "malformed_json")
            field = getattr(exc, "field", None)
            error = {"line": number, "error": reason, "field": field, "message": str(exc)}
            typer.echo(json.dumps(error), err=True)
            continue
        if isinstance(command, ALERT_COMMANDS):
            outcome = alerts.handle(command, known)
        else:
            outcome = exchange.handle(command)
            known.observe(outcome.events)
        for event in outcome.events if not outcome.duplicate else ():
            sequence += 1
            record = {"sequence": sequence, **to_dict(event)}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()
    if errors:
        typer.echo(f"{errors} line(s) refused; see the errors above", err=True)
        raise typer.Exit(1)


def _refuse_float(text: str) -> object:
    from commands.codec import CommandDecodeError

    raise CommandDecodeError(
        "float_not_allowed", f"binary float {text} refused: send numbers as decimal strings"
    )


if __name__ == "__main__":
    app()

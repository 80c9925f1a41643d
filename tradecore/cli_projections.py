"""`tradecore projections ...`: read-model status, rebuilds, the relay and the projector runner.

Mounted in `tradecore/cli.py`. Settings come from `TRADECORE_*` (the database from
`TRADECORE_DATABASE_URL` or the local stack, Kafka from `TRADECORE_KAFKA_BOOTSTRAP`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Annotated

import typer

from infra.settings import Settings, load_settings

app = typer.Typer(
    help="Read models: status, rebuilds, the Kafka relay and the projector runner.",
    no_args_is_help=True,
)

TopicOption = Annotated[
    str, typer.Option(envvar="TRADECORE_KAFKA_TOPIC", help="The Kafka topic of the event log.")
]


def _settings() -> Settings:
    return load_settings()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command("status")
def status() -> None:
    """Each projector's position, how far behind the log it is (events and time); the relay's."""
    import asyncpg

    from infra.readmodels import oldest_unapplied_at, projection_status, relay_status
    from projections.registry import all_projectors

    settings = _settings()

    async def show() -> None:
        conn = await asyncpg.connect(settings.dsn)
        try:
            projectors = await projection_status(conn, [p.name for p in all_projectors()])
            relays = await relay_status(conn)
            waiting = await oldest_unapplied_at(
                conn, [p.position for p in projectors] + [r.position for r in relays]
            )
            now = await conn.fetchval("SELECT now()")
        finally:
            await conn.close()

        def lag(position: int) -> str:
            oldest = waiting.get(position)
            return "0 s" if oldest is None else f"{(now - oldest).total_seconds():,.1f} s"

        typer.echo(f"{'projector':<14}{'position':>10}{'behind':>10}{'lag':>12}  last event at")
        for p in projectors:
            when = "-" if p.event_at is None else f"{p.event_at:%Y-%m-%d %H:%M:%S} UTC"
            typer.echo(f"{p.name:<14}{p.position:>10}{p.behind:>10}{lag(p.position):>12}  {when}")
        for r in relays:
            ack = "-" if r.lag_seconds is None else f"{r.lag_seconds * 1000:.1f} ms"
            typer.echo(
                f"relay {r.name}: published {r.position} of {r.head} "
                f"({r.head - r.position} behind, lag {lag(r.position)}), "
                f"last commit-to-ack lag {ack}"
            )
        typer.echo(
            "lag: age of the oldest event not yet applied (0 s when caught up), "
            "by the database clock"
        )

    asyncio.run(show())


@app.command("rebuild")
def rebuild(
    name: Annotated[str | None, typer.Argument(help="One projector; all when omitted.")] = None,
    batch: Annotated[int, typer.Option(help="Events per transaction.")] = 20_000,  # REBUILD_BATCH
) -> None:
    """Empty read models and replay the whole event log into them (stop the runner first).

    All projectors are rebuilt together: each batch is read and decoded once and applied to
    every projector concurrently."""
    from infra.readmodels import EventStoreSource, PostgresReadModels
    from projections.registry import all_projectors, projector_named
    from projections.runner import rebuild_all

    settings = _settings()
    try:
        chosen = all_projectors() if name is None else [projector_named(name)]
    except KeyError as exc:
        typer.secho(f"error: {exc.args[0]}", fg="red", err=True)
        raise typer.Exit(2) from exc

    async def go() -> None:
        storage = PostgresReadModels(settings.dsn)
        reader = EventStoreSource(settings.dsn, follow=False, bare=True)
        await storage.open()
        await reader.open()
        try:
            head = int(
                await reader.pool.fetchval("SELECT coalesce(max(notification_id), 0) FROM events")
            )
            label = f"rebuilding {', '.join(p.name for p in chosen)}"
            started = time.perf_counter()
            with typer.progressbar(length=head, label=label, show_pos=True) as bar:
                await rebuild_all(storage, chosen, reader, batch_size=batch, progress=bar.update)
            took = time.perf_counter() - started
            typer.echo(f"{head:,} events in {took:.1f} s ({head / max(took, 1e-9):,.0f} events/s)")
        finally:
            await reader.close()
            await storage.close()

    asyncio.run(go())


@app.command("retention")
def retention(
    keep: Annotated[
        str,
        typer.Option(
            envvar="TRADECORE_TRADES_RETENTION",
            help="Keep raw trades this long (30d, 12h, 90m); older ones are dropped.",
        ),
    ] = "30d",
    every: Annotated[
        float, typer.Option(help="Seconds between passes; 0 runs one pass and exits.")
    ] = 0.0,
) -> None:
    """Drop raw trades older than --keep: whole chunks on TimescaleDB (`drop_chunks`), a
    DELETE with a warning on plain PostgreSQL. Candles and statistics stay."""
    from infra.readmodels import RetentionScheduler, parse_age

    settings = _settings()
    try:
        age = parse_age(keep)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    if age is None:
        typer.echo("retention is off")
        return
    scheduler = RetentionScheduler(settings.dsn, age, every=every or 3600.0)

    async def go() -> None:
        if not every:
            done = await scheduler.run_once()
            what = "chunks dropped" if done.method == "drop_chunks" else "rows deleted"
            typer.echo(
                f"{done.table}: {done.removed} {what} before {done.cutoff:%Y-%m-%d %H:%M:%S} UTC"
            )
            return
        await scheduler.run(_stop_on_signals())

    asyncio.run(go())


@app.command("relay")
def relay(topic: TopicOption = "tradecore.events") -> None:
    """Publish the event log to Kafka until stopped (SIGINT/SIGTERM)."""
    from infra.relay import Relay, ensure_topic

    settings = _settings()

    async def go() -> None:
        await ensure_topic(settings.kafka_servers, topic)
        await Relay(settings.dsn, settings.kafka_servers, topic=topic).run(_stop_on_signals())

    asyncio.run(go())


@app.command("run")
def run(
    topic: TopicOption = "tradecore.events",
    kafka: Annotated[
        bool, typer.Option(help="Consume Kafka (the default); --no-kafka reads the event store.")
    ] = True,
    group: Annotated[str, typer.Option(help="Kafka consumer group.")] = "tradecore-projectors",
    max_records: Annotated[
        int, typer.Option(min=1, help="Most Kafka messages per read-model transaction.")
    ] = 5_000,
) -> None:
    """Run every projector until stopped: from Kafka, or straight from the event store."""
    from infra.kafka_source import KafkaSource
    from infra.readmodels import EventStoreSource, PostgresReadModels
    from projections.registry import all_projectors
    from projections.runner import ProjectionRunner

    settings = _settings()

    async def go() -> None:
        storage = PostgresReadModels(settings.dsn)
        store = EventStoreSource(settings.dsn)
        await storage.open()
        await store.open()
        source: KafkaSource | EventStoreSource = store
        if kafka:
            source = KafkaSource(
                settings.kafka_servers, group_id=group, topic=topic, max_records=max_records
            )
            await source.open()
        runner = ProjectionRunner(storage, all_projectors(), backfill=store)
        task = asyncio.create_task(runner.run(source))
        stop = asyncio.create_task(_stop_on_signals().wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()  # a broken projection stops here and says why
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if isinstance(source, KafkaSource):
                await source.close()
            await store.close()
            await storage.close()

    asyncio.run(go())


if __name__ == "__main__":
    app()

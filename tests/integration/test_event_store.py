"""The PostgreSQL event store: gap-free ordered positions, one fenced writer, a hash chain."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlparse

import asyncpg
import pytest

from commands.ports import NewEvent, Snapshot, WriterFenced
from infra.audit import verify_log
from infra.eventstore import PostgresEventStore

STREAM = uuid.UUID("00000000-0000-0000-0000-00000000a11c")


def new_event(version: int, stream: uuid.UUID = STREAM, **payload: object) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        stream_id=stream,
        stream_version=version,
        event_type="FundsDeposited",
        schema_version=1,
        payload=json.dumps({"amount": str(version), **payload}).encode(),
        occurred_at_ns=1_790_000_000_123_456_000 + version,
        command_id=f"cmd-{version}",
        correlation_id="corr-1",
    )


async def filled(store: PostgresEventStore, n: int) -> None:
    await store.acquire_writer("test")
    for start in range(1, n + 1, 3):
        await store.append([new_event(v) for v in range(start, min(start + 3, n + 1))])


async def sql(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    finally:
        await conn.close()


async def test_appended_events_get_gap_free_positions_in_commit_order(
    store: PostgresEventStore,
) -> None:
    await store.acquire_writer("test")
    first = await store.append([new_event(1), new_event(2)])
    second = await store.append([new_event(3)])
    read = await store.read()
    assert [r.position for r in first + second] == [1, 2, 3]
    assert [r.position for r in read] == [1, 2, 3]
    assert [r.event for r in read] == [new.event for new in first + second]
    assert await store.head() == (3, second[-1].hash)


async def test_a_failed_append_writes_nothing_and_the_next_one_continues_the_log(
    store: PostgresEventStore,
) -> None:
    await store.acquire_writer("test")
    await store.append([new_event(1)])
    with pytest.raises(asyncpg.UniqueViolationError):
        await store.append([new_event(2), new_event(1)])  # version 1 exists: the batch fails
    after = await store.append([new_event(2)])
    assert [r.position for r in await store.read()] == [1, 2]
    assert after[0].position == 2
    assert (await verify_log(store)).ok


async def test_a_second_writer_is_refused_while_the_first_holds_the_log(
    migrated_database: str, store: PostgresEventStore
) -> None:
    await store.acquire_writer("core-a")
    second = PostgresEventStore(migrated_database)
    await second.open()
    try:
        with pytest.raises(WriterFenced, match="already written by core-a"):
            await second.acquire_writer("core-b")
        with pytest.raises(WriterFenced):
            await second.append([new_event(1)])
    finally:
        await second.close()


async def test_two_cores_racing_for_the_log_one_wins_and_one_is_refused(
    migrated_database: str,
) -> None:
    cores = [PostgresEventStore(migrated_database) for _ in range(2)]
    for core in cores:
        await core.open()
    try:
        outcomes = await asyncio.gather(
            *(core.acquire_writer(f"core-{i}") for i, core in enumerate(cores)),
            return_exceptions=True,
        )
    finally:
        for core in cores:
            await core.close()
    assert sorted(type(o).__name__ for o in outcomes) == ["WriterFenced", "int"]


async def test_a_standby_takes_over_when_the_writer_goes_away_and_the_old_one_is_fenced(
    migrated_database: str, store: PostgresEventStore
) -> None:
    first_epoch = await store.acquire_writer("core-a")
    await store.append([new_event(1)])
    standby = PostgresEventStore(migrated_database)
    await standby.open()
    try:
        waiting = asyncio.create_task(standby.acquire_writer("core-b", wait=True))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        # core-a loses its lock session (crash, network): the standby takes over.
        assert store._lock_conn is not None
        await store._lock_conn.close()
        second_epoch = await asyncio.wait_for(waiting, 10)
        await standby.append([new_event(2)])
        with pytest.raises(WriterFenced, match="displaced"):
            await store.append([new_event(3)])
        assert second_epoch == first_epoch + 1
        assert [r.writer_epoch for r in await standby.read()] == [first_epoch, second_epoch]
    finally:
        await standby.close()


async def test_audit_passes_on_an_untouched_log(store: PostgresEventStore) -> None:
    await filled(store, 10)
    result = await verify_log(store, batch=4)
    assert result.ok and result.checked == 10


@pytest.mark.parametrize(
    ("tamper", "position", "words"),
    [
        (
            [
                "UPDATE events SET state = convert_to('{\"amount\":\"999\"}', 'UTF8') "
                "WHERE notification_id = 4"
            ],
            4,
            "was altered",
        ),
        (["DELETE FROM events WHERE notification_id = 6"], 6, "is missing"),
        (
            [
                "UPDATE events SET notification_id = notification_id + 1000 "
                "WHERE notification_id >= 5",
                "UPDATE events SET notification_id = notification_id - 999 "
                "WHERE notification_id >= 1000",
                "INSERT INTO events SELECT gen_random_uuid(), 1, topic, state, 5, "
                "gen_random_uuid(), event_type, schema_version, occurred_at, occurred_at_ns, "
                "recorded_at, command_id, correlation_id, writer_epoch, prev_hash, hash "
                "FROM events WHERE notification_id = 4",
            ],
            5,
            "does not follow",
        ),
        (
            [
                "UPDATE events SET notification_id = 1000 WHERE notification_id = 7",
                "UPDATE events SET notification_id = 7 WHERE notification_id = 8",
                "UPDATE events SET notification_id = 8 WHERE notification_id = 1000",
            ],
            7,
            "does not follow",
        ),
    ],
    ids=["altered", "removed", "inserted", "reordered"],
)
async def test_audit_reports_the_first_position_where_the_log_was_tampered_with(
    migrated_database: str,
    store: PostgresEventStore,
    tamper: list[str],
    position: int,
    words: str,
) -> None:
    await filled(store, 10)
    await sql(migrated_database, *tamper)
    result = await verify_log(store)
    assert not result.ok
    assert result.position == position
    assert words in result.problem


async def test_the_eventsourcing_library_reads_our_log_in_order(
    migrated_database: str, store: PostgresEventStore
) -> None:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    await store.acquire_writer("test")
    other = uuid.UUID("00000000-0000-0000-0000-0000000000b0")
    await store.append([new_event(1), new_event(1, stream=other), new_event(2)])
    await store.append([new_event(2, stream=other)])
    url = urlparse(migrated_database)
    datastore = PostgresDatastore(
        dbname=url.path.lstrip("/"), host=url.hostname or "", port=url.port or 5432,
        user=url.username or "", password=url.password or "",
    )  # fmt: skip
    try:
        recorder = PostgresApplicationRecorder(datastore, events_table_name="events")
        notifications = await asyncio.to_thread(recorder.select_notifications, 1, 10)
        max_id = await asyncio.to_thread(recorder.max_notification_id)
    finally:
        datastore.close()
    ours = await store.read()
    assert max_id == 4
    assert [(n.id, n.originator_id, n.originator_version, n.state) for n in notifications] == [
        (r.position, r.event.stream_id, r.event.stream_version, r.event.payload) for r in ours
    ]
    assert notifications[0].topic == "tradecore:FundsDeposited/v1"


async def test_snapshots_are_stored_compressed_and_only_the_latest_three_are_kept(
    store: PostgresEventStore, migrated_database: str
) -> None:
    big = {"exchange": {"orders": [{"order_id": f"o{i}", "lots": i} for i in range(5_000)]}}
    for position in (10, 20, 30, 40, 50):
        await store.save_snapshot(Snapshot(position, f"hash-{position}", big))
    latest = await store.latest_snapshot()
    assert latest is not None and (latest.position, latest.state_hash) == (50, "hash-50")
    assert latest.loaded_state() == big
    conn = await asyncpg.connect(migrated_database)
    try:
        rows = await conn.fetch(
            "SELECT position, state IS NULL AS no_jsonb, length(state_zlib) AS size "
            "FROM core_snapshots ORDER BY position"
        )
        # A snapshot from before compressed storage (jsonb) is still read.
        await conn.execute("DELETE FROM core_snapshots")
        await conn.execute(
            "INSERT INTO core_snapshots (position, state_hash, state) VALUES (7, 'h', $1)",
            json.dumps({"exchange": {"old": True}}),
        )
    finally:
        await conn.close()
    assert [r["position"] for r in rows] == [30, 40, 50]
    assert all(r["no_jsonb"] for r in rows)
    assert all(r["size"] < len(json.dumps(big)) / 5 for r in rows)
    assert await store.latest_snapshot() == Snapshot(7, "h", {"exchange": {"old": True}})

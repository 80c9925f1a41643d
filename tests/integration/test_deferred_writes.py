"""A projector batch as one script (`DeferredWrites`): parameters written in as literals
reach PostgreSQL exactly as asyncpg would send them, and rows and position commit together
or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.readmodels import PostgresReadModels
from infra.sql_text import inline

pytestmark = pytest.mark.integration

# Any text PostgreSQL can store: everything but NUL (quotes, backslashes, the projectors'
# separators \x1e and \x1f, newlines, non-ASCII).
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
TRICKY = ["", "'", "''", "\\", "\\'", '"', "a'; DROP TABLE t; --", "$1", "\x1e\x1f", "é€😀"]


@pytest.fixture
async def conn(migrated_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        migrated_database, server_settings={"standard_conforming_strings": "on"}
    )
    yield connection
    await connection.close()


async def same_as_a_parameter(conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
    """The value `sql` yields with its parameters bound, and checks the literal version
    yields the same."""
    bound = await conn.fetchval(sql, *args)
    written = await conn.fetchval(inline(sql, args))
    assert written == bound
    return written


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.sampled_from(TRICKY), TEXT))
async def test_text_arrives_verbatim(conn: asyncpg.Connection, text: str) -> None:
    assert await same_as_a_parameter(conn, "SELECT $1::text", text) == text
    assert await same_as_a_parameter(conn, "SELECT $1::text[]", [text, None, text]) == [
        text,
        None,
        text,
    ]


async def test_numbers_times_and_arrays_keep_their_values(conn: asyncpg.Connection) -> None:
    when = datetime(2026, 11, 22, 15, 4, 5, 123456, tzinfo=UTC)
    east = when.astimezone(timezone(timedelta(hours=5, minutes=30)))
    cases: list[tuple[str, Any]] = [
        ("SELECT $1::bigint", 2**62),
        ("SELECT $1::bigint", -(2**62)),
        ("SELECT 10 - $1::bigint", -3),  # not `10 --3`, a comment
        ("SELECT $1::numeric", Decimal("-0.000000012345678901234567890123456789")),
        ("SELECT $1::numeric", Decimal("1E+30")),
        ("SELECT $1::timestamptz", when),
        ("SELECT $1::timestamptz", east),
        ("SELECT $1::boolean", True),
        ("SELECT $1::bigint[]", [1, -2, None, 3]),
        ("SELECT $1::numeric[]", [Decimal("1.5"), None]),
        ("SELECT $1::timestamptz[]", [when, east]),
        ("SELECT $1::text[]", []),
        ("SELECT $2::text || $1::text", "b"),
    ]
    for sql, value in cases:
        args = (value, "a") if "$2" in sql else (value,)
        await same_as_a_parameter(conn, sql, *args)


async def test_nul_and_unknown_types_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="NUL"):
        inline("SELECT $1::text", ["a\x00b"])
    with pytest.raises(ValueError, match="NUL"):
        inline("SELECT $1::text[]", [["a\x00"]])
    with pytest.raises(TypeError, match="bytes"):
        inline("SELECT $1", [b"x"])
    with pytest.raises(ValueError, match=r"\$2"):
        inline("SELECT $2", ["x"])


async def test_a_script_commits_rows_and_position_together_or_not_at_all(
    migrated_database: str,
) -> None:
    storage = PostgresReadModels(migrated_database)
    await storage.open()
    try:
        await storage.execute("CREATE TABLE scratch (v text)")
        await storage.execute("INSERT INTO projection_positions (name, position) VALUES ('p', 5)")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO scratch (v) VALUES ($1)", "it's")
            await tx.execute("INSERT INTO scratch (v) SELECT unnest($1::text[])", ["x", '"y"'])
            assert await tx.commit("p", 5, 9, at)
        rows = await storage.pool.fetch("SELECT v FROM scratch ORDER BY v")
        assert [r[0] for r in rows] == ['"y"', "it's", "x"]
        assert await storage.pool.fetchval("SELECT position FROM projection_positions") == 9

        # Built on position 5, but the projector is at 9 now: nothing of it lands.
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO scratch (v) VALUES ($1)", "stale")
            assert not await tx.commit("p", 5, 12, at)
        assert await storage.pool.fetchval("SELECT count(*) FROM scratch") == 3
        assert await storage.pool.fetchval("SELECT position FROM projection_positions") == 9

        # A failing write fails the script: the position stays.
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO scratch (v) VALUES ($1)", "lost")
            await tx.execute("INSERT INTO no_such_table VALUES (1)")
            with pytest.raises(asyncpg.UndefinedTableError):
                await tx.commit("p", 9, 10, at)
        assert await storage.pool.fetchval("SELECT count(*) FROM scratch") == 3
        assert await storage.pool.fetchval("SELECT position FROM projection_positions") == 9

        # A rival (a rebuild) wrote the same rows and moved the position before this script
        # ran: the write fails first, and the moved position is what commit reports.
        await storage.execute("CREATE TABLE keyed (k text PRIMARY KEY)")
        await storage.execute("INSERT INTO keyed VALUES ('o-1')")
        await storage.execute("UPDATE projection_positions SET position = 11 WHERE name = 'p'")
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO keyed VALUES ($1)", "o-1")
            assert not await tx.commit("p", 9, 10, at)
        # The same failure with the position still in place is a real error.
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO keyed VALUES ($1)", "o-1")
            with pytest.raises(asyncpg.UniqueViolationError):
                await tx.commit("p", 11, 12, at)

        # A read after a held write would not see it: refused.
        async with storage.deferred() as tx:
            await tx.execute("INSERT INTO scratch (v) VALUES ($1)", "held")
            with pytest.raises(RuntimeError, match="held write"):
                await tx.fetch("SELECT v FROM scratch")
    finally:
        await storage.close()

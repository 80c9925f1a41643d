"""The bulk-write helpers projectors flush batches with: one text parameter per column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from projections.base import (
    BIGINT,
    BOOLEAN,
    NUMERIC,
    TEXT,
    TIME,
    delete_write,
    insert_rows,
    insert_sql,
    insert_template,
    rows_write,
    write_all,
)

COLUMNS = (("id", TEXT), ("n", BIGINT), ("ok", BOOLEAN), ("amount", NUMERIC), ("at", TIME))


class RecordingTx:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any) -> str:
        self.calls.append((query, args))
        return "INSERT 0 0"


def test_the_insert_splits_each_column_and_converts_numerics_and_times_on_the_server() -> None:
    sql = insert_sql("t", COLUMNS, "ON CONFLICT DO NOTHING")
    assert sql.startswith("INSERT INTO t (id, n, ok, amount, at) SELECT id, n, ok, amount, ")
    assert "timestamptz 'epoch' + at * interval '1 microsecond'" in sql
    assert "(string_to_array(chr(31) || $4, chr(31), chr(30)))[2:]::numeric[]" in sql
    assert "(string_to_array(chr(31) || $5, chr(31), chr(30)))[2:]::bigint[]" in sql
    assert sql.endswith("ON CONFLICT DO NOTHING")


async def test_rows_travel_as_one_joined_text_per_column_exactly() -> None:
    tx = RecordingTx()
    rows = [
        ("a", 1, True, Decimal("0.05"), 1_767_225_600_123_456_789),
        ("", -2, False, None, 0),
        ("c d", 3, True, Decimal("0E-8"), 999),
    ]
    await insert_rows(tx, "SQL", COLUMNS, rows)  # type: ignore[arg-type]
    [(query, args)] = tx.calls
    assert query == "SQL"
    assert args == (
        "a\x1f\x1fc d",
        "1\x1f-2\x1f3",
        "t\x1ff\x1ft",
        "0.05\x1f\x1e\x1f0E-8",  # None is the null marker; Decimals keep their scale
        "1767225600123456\x1f0\x1f0",  # nanoseconds truncated to microseconds
    )


async def test_nothing_is_sent_for_an_empty_batch() -> None:
    tx = RecordingTx()
    await insert_rows(tx, "SQL", COLUMNS, [])  # type: ignore[arg-type]
    assert tx.calls == []


@pytest.mark.parametrize("bad", ["x\x1fy", "\x1e", "a\x1eb"])
async def test_a_text_value_holding_a_separator_is_refused_rather_than_shifting_columns(
    bad: str,
) -> None:
    with pytest.raises(ValueError, match="control character"):
        await insert_rows(RecordingTx(), "SQL", (("id", TEXT),), [(bad,), ("ok",)])  # type: ignore[arg-type]


async def test_independent_writes_go_in_one_statement_with_their_parameters_renumbered() -> None:
    tx = RecordingTx()
    first = insert_template("a", (("id", TEXT), ("n", BIGINT)), "ON CONFLICT DO NOTHING")
    second = insert_template("b", (("amount", NUMERIC),))
    await write_all(
        tx,
        [
            delete_write("c", "id", ["x", "y"]),
            rows_write(first, (("id", TEXT), ("n", BIGINT)), [("p", 1), ("q", 2)]),
            rows_write(second, (("amount", NUMERIC),), []),  # nothing to write: left out
            rows_write(second, (("amount", NUMERIC),), [(Decimal("1.50"),)]),
        ],
    )
    [(query, args)] = tx.calls
    assert query.startswith("WITH w0 AS (DELETE FROM c WHERE id = ANY($1::text[])), w1 AS (")
    assert "INSERT INTO a (id, n)" in query and "$2" in query and "$3" in query
    assert ") INSERT INTO b (amount)" in query and "$4" in query and "$5" not in query
    assert args == (["x", "y"], "p\x1fq", "1\x1f2", "1.50")


async def test_no_statement_is_sent_when_no_write_has_rows() -> None:
    tx = RecordingTx()
    await write_all(tx, [delete_write("c", "id", []), None])
    assert tx.calls == []

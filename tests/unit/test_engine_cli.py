"""`tradecore engine run`: JSON-line commands in, events out, bad lines refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tradecore.cli import app

runner = CliRunner()


def line(n: int, kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, "command_id": f"c{n}", "timestamp_ns": 1_000 + n, **fields})


SESSION = [
    line(1, "list_instrument", symbol="BTC-USD", base="BTC", quote="USD", base_decimals=8,
         quote_decimals=4, tick_size="0.01", lot_size="0.01", min_qty="0.01",
         max_qty="100", reference_price="30000.00", price_band_bps=1000, maker_fee_bps=10,
         taker_fee_bps=20),
    line(2, "open_account", account_id="alice"),
    line(3, "open_account", account_id="bob"),
    line(4, "deposit_funds", account_id="alice", asset="USD", amount="100000.00"),
    line(5, "deposit_funds", account_id="bob", asset="BTC", amount="2"),
    line(6, "place_order", account_id="bob", symbol="BTC-USD", side="sell", order_type="limit",
         order_id="o1", client_order_id="b1", price="30000.00", quantity="0.5"),
    line(7, "place_order", account_id="alice", symbol="BTC-USD", side="buy", order_type="limit",
         order_id="o2", client_order_id="a1", price="30010.00", quantity="0.2",
         time_in_force="ioc"),
]  # fmt: skip


def run(tmp_path: Path, lines: list[str]) -> tuple[int, list[dict[str, object]], str]:
    path = tmp_path / "commands.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["engine", "run", "--commands", str(path)])
    events = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    return result.exit_code, events, result.stderr


def test_a_crossing_order_trades_at_the_resting_price(tmp_path: Path) -> None:
    code, events, _ = run(tmp_path, SESSION)
    trades = [e for e in events if e["event_type"] == "TradeExecuted"]
    assert code == 0
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len(trades) == 1
    assert trades[0]["maker_order_id"] == "o1" and trades[0]["taker_order_id"] == "o2"
    assert trades[0]["price_ticks"] == 3_000_000  # 30000.00 in 0.01 ticks: the maker's price


def test_the_same_commands_give_byte_identical_events(tmp_path: Path) -> None:
    first = runner.invoke(app, ["engine", "run", "--commands", "-"], input="\n".join(SESSION))
    second = runner.invoke(app, ["engine", "run", "--commands", "-"], input="\n".join(SESSION))
    assert first.exit_code == 0 and first.stdout == second.stdout


def test_bad_lines_are_refused_with_line_and_reason_and_change_nothing(tmp_path: Path) -> None:
    bad = [
        '{"type": "place_order", "price": 30000.5}',
        "{not json",
        line(9, "place_order", account_id="alice", symbol="BTC-USD", side="buy",
             order_type="limit", order_id="o9", client_order_id="a9", price="abc",
             quantity="1"),
        line(10, "launch_rocket"),
        line(11, "deposit_funds", account_id="alice", asset="USD", amount="1" * 39),
    ]  # fmt: skip
    code, events, stderr = run(tmp_path, SESSION[:5] + bad + SESSION[5:])
    _, clean, _ = run(tmp_path, SESSION)
    errors = [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]
    assert code == 1
    assert [(e["line"], e["error"]) for e in errors] == [
        (6, "float_not_allowed"),
        (7, "malformed_json"),
        (8, "not_a_decimal"),
        (9, "unknown_command"),
        (10, "out_of_range"),
    ]
    assert errors[2]["field"] == "price"
    assert events == clean

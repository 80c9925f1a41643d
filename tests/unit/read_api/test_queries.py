"""Queries over the read models: batching (no N+1), private trade sides, exact decimals."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.read_api.conftest import Api, codes
from tests.unit.read_api.fakes import T0, fill_row, order_row, trade_row

DEEP = """{ portfolios { accountId balances { asset available } positions { symbol unrealizedPnl }
  orders { orderId fills { tradeId order { status } } } fills { tradeId } } }"""


def _accounts(api: Api, n: int) -> None:
    for i in range(n):
        account = f"acc-{i}"
        api.db.tables["balances"].append(
            {
                "account_id": account,
                "asset": "USD",
                "available": Decimal("10.5"),
                "reserved": Decimal(0),
            }
        )
        api.db.tables["positions"].append(
            {
                "account_id": account,
                "symbol": "BTC-USD",
                "quantity": Decimal(1),
                "avg_cost": Decimal(30000),
                "realized_pnl": Decimal(0),
                "fees_paid": Decimal(0),
                "last_price": Decimal(31000),
                "unrealized_pnl": Decimal(1000),
            }
        )
        for j in range(3):
            order_id = f"o-{i}-{j}"
            api.db.tables["orders"].append(order_row(order_id, account))
            api.db.tables["fills"].append(fill_row(order_id, i * 10 + j))


async def test_a_deep_portfolio_query_runs_the_same_statements_for_3_or_30_accounts(
    api: Api,
) -> None:
    _accounts(api, 3)
    few = await api.run(DEEP, token="auditor")
    assert few.errors is None
    statements_for_few = len(api.db.statements)

    api.db.statements.clear()
    _accounts(api, 30)
    many = await api.run(DEEP, token="auditor")
    assert many.errors is None
    assert many.data is not None
    assert len(many.data["portfolios"]) == 30
    assert len(api.db.statements) == statements_for_few
    assert statements_for_few <= 7  # accounts, balances, positions, orders, fills x2, order


async def test_a_trader_sees_only_its_own_side_of_a_public_trade(api: Api) -> None:
    api.db.tables["trades"].append(trade_row(1, maker="bob-1", taker="alice-1"))
    query = """{ trades(symbol: "BTC-USD") { tradeId price makerAccountId makerFee
                 takerAccountId takerOrderId } }"""
    result = await api.run(query, token="alice")
    assert result.errors is None
    assert result.data == {
        "trades": [
            {
                "tradeId": "1",
                "price": "30000.00",
                "makerAccountId": None,
                "makerFee": None,
                "takerAccountId": "alice-1",
                "takerOrderId": "o-t1",
            }
        ]
    }


async def test_an_auditor_sees_both_sides_of_a_trade(api: Api) -> None:
    api.db.tables["trades"].append(trade_row(1, maker="bob-1", taker="alice-1"))
    result = await api.run(
        '{ trades(symbol: "BTC-USD") { makerAccountId takerAccountId } }', token="auditor"
    )
    assert result.data == {"trades": [{"makerAccountId": "bob-1", "takerAccountId": "alice-1"}]}


async def test_decimals_are_plain_strings_and_big_integers_do_not_lose_digits(api: Api) -> None:
    api.db.tables["trades"].append(
        {**trade_row(1, "bob-1", "alice-1"), "price": Decimal("0E-8"), "quantity": Decimal("1E+2")}
    )
    result = await api.run('{ trades(symbol: "BTC-USD") { price quantity executedAtNs } }')
    assert result.data == {
        "trades": [
            {"price": "0.00000000", "quantity": "100", "executedAtNs": "1795000000000000001"}
        ]
    }


async def test_an_unknown_candle_interval_is_refused_with_the_field_named(api: Api) -> None:
    result = await api.run('{ candles(symbol: "BTC-USD", interval: "7m") { bucket } }')
    assert codes(result) == ["invalid_value"]
    assert result.errors is not None
    assert result.errors[0].extensions is not None
    assert result.errors[0].extensions["details"]["field"] == "interval"


async def test_candles_come_back_as_stored(api: Api) -> None:
    api.db.tables["candles"].append(
        {
            "symbol": "BTC-USD",
            "interval": "1m",
            "bucket": T0,
            "open": Decimal("1.10"),
            "high": Decimal("2"),
            "low": Decimal("1"),
            "close": Decimal("1.5"),
            "volume": Decimal("3"),
            "quote_volume": Decimal("4.5"),
            "vwap": Decimal("1.5"),
            "trade_count": 2,
            "first_trade_id": 1,
            "last_trade_id": 2,
        }
    )
    result = await api.run(
        '{ candles(symbol: "BTC-USD", interval: "1m") { bucket open vwap tradeCount } }'
    )
    assert result.data == {
        "candles": [{"bucket": T0.isoformat(), "open": "1.10", "vwap": "1.5", "tradeCount": 2}]
    }


async def test_a_limit_over_the_maximum_is_refused(api: Api) -> None:
    result = await api.run('{ trades(symbol: "BTC-USD", limit: 100000) { tradeId } }')
    assert codes(result) == ["invalid_value"]


async def test_another_traders_order_by_id_reads_as_null(api: Api) -> None:
    api.db.tables["orders"].append(order_row("o-bob", "bob-1"))
    result = await api.run('{ order(orderId: "o-bob") { orderId } }', token="alice")
    assert result.errors is None
    assert result.data == {"order": None}

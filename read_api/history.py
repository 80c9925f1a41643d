"""An account's state as of a past log position or time, for auditors.

The state is recomputed by the core's own rules: a fresh `domain.exchange.Exchange` applies
the committed events (decoded with `domain.events.from_dict`, as the core's
`decode_payload` does) up to the position. It starts from the newest core snapshot at or
before that position when there is one it can read, else from zero, so the answer is the
core's state at that position exactly (the read models may lag or be rebuilding; the log
does not). A time means the last position whose command time is at or before it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from decimal import Decimal

from domain.events import ALERT_EVENT_TYPES, from_dict
from domain.exchange import Exchange
from domain.values import AccountId, from_atoms
from read_api import queries
from read_api.queries import Db

REPLAY_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class BalanceAt:
    asset: str
    available: Decimal
    reserved: Decimal
    available_atoms: int
    reserved_atoms: int


@dataclass(frozen=True, slots=True)
class OrderAt:
    order_id: str
    symbol: str
    side: str
    order_type: str
    price: Decimal
    remaining_quantity: Decimal
    resting: bool


@dataclass(frozen=True, slots=True)
class AccountStateAt:
    account_id: str
    position: int
    exists: bool
    balances: list[BalanceAt]
    open_orders: list[OrderAt]
    replayed_events: int
    from_snapshot: int | None


def _snapshot_exchange(row_json: str) -> Exchange | None:
    """The exchange of a core snapshot row (jsonb ``state`` or zlib-compressed JSON
    ``state_zlib``), or None if this reader does not know its format: replay from zero."""
    try:
        row = json.loads(row_json)
        if row.get("state_zlib"):
            packed = bytes.fromhex(str(row["state_zlib"]).removeprefix("\\x"))
            data = json.loads(zlib.decompress(packed))
        else:
            data = row["state"]
        return Exchange.from_snapshot(data["exchange"])
    except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
        return None


async def exchange_at(db: Db, position: int) -> tuple[Exchange, int, int | None]:
    """The core's state after ``position``: (exchange, events replayed, snapshot used)."""
    exchange = Exchange()
    start = 0
    used: int | None = None
    snapshot = await queries.snapshot_at_or_before(db, position)
    if snapshot is not None:
        restored = _snapshot_exchange(snapshot["row"])
        if restored is not None:
            exchange, start, used = restored, int(snapshot["position"]), int(snapshot["position"])
    replayed = 0
    while True:
        rows = await queries.event_payloads(db, start, position, REPLAY_BATCH)
        for row in rows:
            event = from_dict(json.loads(bytes(row["state"])))
            if not isinstance(event, ALERT_EVENT_TYPES):  # alerts do not change an account
                exchange.apply(event)
        replayed += len(rows)
        if len(rows) < REPLAY_BATCH:
            return exchange, replayed, used
        start = int(rows[-1]["notification_id"])


async def account_state_at(db: Db, account_id: str, position: int) -> AccountStateAt:
    exchange, replayed, snapshot = await exchange_at(db, position)
    account = exchange.accounts.get(AccountId(account_id))
    balances = []
    if account is not None:
        for asset, balance in sorted(account.balances.items()):
            decimals = exchange.asset_decimals.get(asset, 0)
            balances.append(
                BalanceAt(
                    asset=str(asset),
                    available=from_atoms(balance.available, decimals),
                    reserved=from_atoms(balance.reserved, decimals),
                    available_atoms=balance.available,
                    reserved_atoms=balance.reserved,
                )
            )
    orders = []
    for order in sorted(exchange.orders.values(), key=lambda o: o.seq):
        if order.account_id != account_id:
            continue
        inst = exchange.instruments[order.symbol]
        orders.append(
            OrderAt(
                order_id=str(order.order_id),
                symbol=str(order.symbol),
                side=order.side.value,
                order_type=order.order_type.value,
                price=inst.ticks_to_price(order.price_ticks),
                remaining_quantity=inst.lots_to_qty(order.remaining_lots),
                resting=order.resting,
            )
        )
    return AccountStateAt(
        account_id=account_id,
        position=position,
        exists=account is not None,
        balances=balances,
        open_orders=orders,
        replayed_events=replayed,
        from_snapshot=snapshot,
    )

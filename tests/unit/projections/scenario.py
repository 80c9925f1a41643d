"""A seeded market: listing, funded accounts, then limit, market, cancel and amend orders.

Timestamps move forward by random steps from a millisecond to a couple of hours, so trades
fall into every candle interval and across UTC midnights.
"""

from __future__ import annotations

import random
from decimal import Decimal

from domain.commands import Command
from domain.values import Side
from tests.unit.domain import factories as f

START_NS = 1_767_225_000 * 1_000_000_000  # 2025-12-31 23:50 UTC: the first day rolls over
ACCOUNTS = (f.ALICE, f.BOB, f.CAROL)


def market_commands(orders: int = 200, seed: int = 7) -> list[Command]:
    rng = random.Random(seed)
    now = START_NS

    def at() -> dict[str, int]:
        nonlocal now
        now += rng.choice((1_000_000, 250_000_000, 2_000_000_000, 45_000_000_000,
                           400_000_000_000, 3_000_000_000_000))  # fmt: skip
        return {"timestamp_ns": now}

    commands: list[Command] = [f.list_instrument(**at())]
    for account in ACCOUNTS:
        commands += [
            f.open_account(account, **at()),
            f.deposit(account, f.USD, "50000.00", **at()),
            f.deposit(account, f.ABC, "300", **at()),
        ]
    placed: list[tuple[str, str]] = []
    for _ in range(orders):
        account = rng.choice(ACCOUNTS)
        roll = rng.random()
        if roll < 0.08 and placed:
            owner, order_id = rng.choice(placed)
            commands.append(f.cancel(owner, order_id, **at()))
        elif roll < 0.14 and placed:
            owner, order_id = rng.choice(placed)
            price = Decimal(rng.randint(9700, 10300)) / 100
            commands.append(f.amend(owner, order_id, price=str(price), **at()))
        elif roll < 0.22:
            side = rng.choice((Side.BUY, Side.SELL))
            commands.append(f.market(account, side, qty=str(rng.randint(1, 4)), **at()))
        elif roll < 0.25:
            commands.append(f.market(account, Side.BUY, qty=None, budget="250.00", **at()))
        else:
            side = rng.choice((Side.BUY, Side.SELL))
            price = Decimal(rng.randint(9700, 10300)) / 100
            order = f.limit(account, side, str(price), str(rng.randint(1, 5)), **at())
            placed.append((account, order.order_id))
            commands.append(order)
        if rng.random() < 0.03:
            commands.append(f.deposit(account, f.USD, "1000.00", **at()))
        if rng.random() < 0.02:
            commands.append(f.withdraw(account, f.ABC, "1", **at()))
    return commands

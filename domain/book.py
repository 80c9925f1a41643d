"""The order book of one instrument: open orders, price levels and price-time priority.

Each side keeps a dict from price (ticks) to a FIFO deque of orders and an ascending list
of the prices present (kept sorted with ``bisect``). The book only stores and orders;
matching decisions live in ``domain.exchange``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator

from domain.values import (
    AccountId,
    Asset,
    ClientOrderId,
    OrderId,
    OrderType,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)


class Order:
    """An open order. Mutable state: ``remaining_lots``, ``price_ticks``, ``reserved_atoms``."""

    __slots__ = (
        "account_id",
        "budget",
        "client_order_id",
        "order_id",
        "order_type",
        "post_only",
        "price_ticks",
        "remaining_lots",
        "reserved_asset",
        "reserved_atoms",
        "resting",
        "seq",
        "side",
        "stp",
        "symbol",
        "time_in_force",
    )

    def __init__(
        self,
        order_id: OrderId,
        account_id: AccountId,
        symbol: Symbol,
        client_order_id: ClientOrderId,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention,
        price_ticks: int,
        remaining_lots: int,
        budget: bool,
        reserved_asset: Asset,
        reserved_atoms: int,
        seq: int,
    ) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.client_order_id = client_order_id
        self.side = side
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.post_only = post_only
        self.stp = stp
        self.price_ticks = price_ticks
        self.remaining_lots = remaining_lots
        self.budget = budget
        self.reserved_asset = reserved_asset
        self.reserved_atoms = reserved_atoms
        self.seq = seq
        self.resting = False

    def to_dict(self) -> dict[str, str | int | bool]:
        return {
            "order_id": self.order_id,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "client_order_id": self.client_order_id,
            "side": self.side.value,
            "order_type": self.order_type.value,
            "time_in_force": self.time_in_force.value,
            "post_only": self.post_only,
            "stp": self.stp.value,
            "price_ticks": self.price_ticks,
            "remaining_lots": self.remaining_lots,
            "budget": self.budget,
            "reserved_asset": self.reserved_asset,
            "reserved_atoms": self.reserved_atoms,
            "seq": self.seq,
        }

    @staticmethod
    def from_dict(data: dict[str, str | int | bool]) -> Order:
        return Order(
            order_id=OrderId(str(data["order_id"])),
            account_id=AccountId(str(data["account_id"])),
            symbol=Symbol(str(data["symbol"])),
            client_order_id=ClientOrderId(str(data["client_order_id"])),
            side=Side(str(data["side"])),
            order_type=OrderType(str(data["order_type"])),
            time_in_force=TimeInForce(str(data["time_in_force"])),
            post_only=bool(data["post_only"]),
            stp=SelfTradePrevention(str(data["stp"])),
            price_ticks=int(data["price_ticks"]),
            remaining_lots=int(data["remaining_lots"]),
            budget=bool(data["budget"]),
            reserved_asset=Asset(str(data["reserved_asset"])),
            reserved_atoms=int(data["reserved_atoms"]),
            seq=int(data["seq"]),
        )


class BookSide:
    """One side of a book. ``prices`` ascending; the best bid is the last, best ask the first."""

    __slots__ = ("is_bid", "levels", "prices")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.prices: list[int] = []
        self.levels: dict[int, deque[Order]] = {}

    def best_price(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def level(self, price: int) -> deque[Order]:
        return self.levels[price]

    def append(self, order: Order) -> None:
        """Put ``order`` at the back of its price level."""
        price = order.price_ticks
        queue = self.levels.get(price)
        if queue is None:
            queue = deque()
            self.levels[price] = queue
            insort(self.prices, price)
        queue.append(order)
        order.resting = True

    def remove(self, order: Order) -> None:
        """Take ``order`` out of its level (front in O(1), elsewhere O(level size))."""
        price = order.price_ticks
        queue = self.levels[price]
        if queue[0] is order:
            queue.popleft()
        else:
            queue.remove(order)
        order.resting = False
        if not queue:
            del self.levels[price]
            del self.prices[bisect_left(self.prices, price)]

    def prices_by_priority(self) -> list[int]:
        return list(reversed(self.prices)) if self.is_bid else list(self.prices)

    def orders_by_priority(self) -> Iterator[Order]:
        for price in self.prices_by_priority():
            yield from self.levels[price]

    def __len__(self) -> int:
        return sum(len(q) for q in self.levels.values())


class OrderBook:
    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: Symbol) -> None:
        self.symbol = symbol
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)

    def side(self, side: Side) -> BookSide:
        return self.bids if side is Side.BUY else self.asks

    def opposite(self, side: Side) -> BookSide:
        return self.asks if side is Side.BUY else self.bids

    def crosses(self, side: Side, price_ticks: int) -> bool:
        """Would an order on ``side`` at ``price_ticks`` take liquidity?"""
        best = self.opposite(side).best_price()
        if best is None:
            return False
        return best <= price_ticks if side is Side.BUY else best >= price_ticks

    def is_crossed(self) -> bool:
        bid = self.bids.best_price()
        ask = self.asks.best_price()
        return bid is not None and ask is not None and bid >= ask

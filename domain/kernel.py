"""The compiled matching kernel (Rust, ``native/kernel``) behind the ``Exchange`` API.

``domain/exchange.py`` is the reference implementation and the fallback. When the Rust
kernel is built (``python -m tradecore.build_native``, run by ``make``) and not disabled with
``TRADECORE_PURE_PYTHON=1``, ``make_exchange()`` and ``exchange_from_snapshot()`` return a
``FastExchange``: the same decisions, the same events (the real ``domain.events`` classes,
same values, same order), the same snapshot and ``state_hash()``, checked side by side by
``tests/unit/domain/test_kernel_parity.py``. Otherwise they return ``Exchange``.

Beyond ``Exchange``'s API, ``FastExchange`` has ``apply_payload(payload) -> stream key``
(replay of one canonical JSON payload without building Python objects),
``handle_encoded(command) -> (Outcome, payloads)`` and its batch form
``handle_encoded_many(commands) -> [(Outcome, payloads), ...]`` (what ``commands.core``
decides a batch with). ``handle_many(commands)`` is ``[handle(c) for c in commands]`` in one
call, on both implementations.

The kernel reads command fields straight from the slots of the exact command classes (other
classes go through ``getattr``) and ``Decimal`` values from ``_decimal``'s C layout when
start-up probes show it agrees with ``str()`` on this interpreter (else through ``str()``);
``decimal_fast_path()`` says which.

Read-only views (``instruments``, ``accounts``, ``orders``, ``last_price``, ``fees``,
``books``) are rebuilt from the kernel on each access: fine for queries, not for loops.

Limits of the kernel (never reached by real listings): amounts, prices and quantities are
128-bit integers, exact conversions beyond 10^36 units raise ``OverflowError``, and a
``Decimal`` with more than 38 significant digits raises ``OverflowError``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from domain.book import Order, OrderBook
from domain.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    DepositFunds,
    HaltTrading,
    ListInstrument,
    OpenAccount,
    PlaceOrder,
    ResumeTrading,
    WithdrawFunds,
)
from domain.events import EVENT_TYPES, Event, EventDecodeError
from domain.exchange import Account, Balance, Exchange, _instrument_from_dict
from domain.instruments import Instrument
from domain.outcome import Outcome
from domain.values import (
    AccountId,
    Asset,
    CancelReason,
    OrderId,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)

__all__ = [
    "FastExchange",
    "exchange_from_snapshot",
    "kernel_available",
    "kernel_status",
    "make_exchange",
]

DOMAIN_DIR = Path(__file__).resolve().parent
KERNEL_STAMP = DOMAIN_DIR / "_kernel_sources.txt"
KERNEL_SOURCES = DOMAIN_DIR.parent / "native" / "kernel"


def kernel_source_digest(crate: Path = KERNEL_SOURCES) -> str:
    """sha256 over the crate's manifest, lock file and Rust sources (sorted by path)."""
    digest = hashlib.sha256()
    paths = [crate / "Cargo.toml", crate / "Cargo.lock", *sorted((crate / "src").glob("*.rs"))]
    for path in paths:
        if path.exists():
            digest.update(path.relative_to(crate).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _load() -> tuple[ModuleType | None, str]:
    try:
        module = importlib.import_module("domain._kernel")
    except ImportError as exc:
        return None, f"not built ({exc})"
    built = KERNEL_STAMP.read_text().strip() if KERNEL_STAMP.exists() else ""
    if KERNEL_SOURCES.exists() and built != kernel_source_digest():
        warnings.warn(
            "the Rust kernel is out of date with native/kernel and is ignored; rebuild it "
            "with `python -m tradecore.build_native` (or `make native`)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, "out of date with native/kernel (rebuild: make native)"
    return module, "built"


_MODULE, _STATUS = _load()


class _Kernel(Protocol):
    def handle(self, command: Command) -> Outcome: ...
    def handle_encoded(self, command: Command) -> tuple[Outcome, list[bytes]]: ...
    def handle_many(self, commands: Iterable[Command]) -> list[Outcome]: ...
    def handle_encoded_many(
        self, commands: Iterable[Command]
    ) -> list[tuple[Outcome, list[bytes]]]: ...
    def decimal_fast_path(self) -> bool: ...
    def apply(self, event: Event) -> None: ...
    def apply_payload(self, payload: bytes) -> str: ...
    def apply_payloads(self, payloads: list[bytes]) -> int: ...
    def snapshot_json(self) -> str: ...
    def views_json(self) -> str: ...
    def state_hash(self) -> str: ...
    def load_snapshot_json(self, text: str) -> None: ...
    def balance(self, account: str, asset: str) -> tuple[int, int]: ...
    def fee_balance(self, asset: str) -> int: ...
    def reference_price(self, symbol: str) -> int: ...
    def last_price(self, symbol: str) -> int | None: ...
    def order(self, order_id: str) -> tuple[Any, ...] | None: ...
    def orders(self) -> list[tuple[Any, ...]]: ...
    def orders_of(self, account: str) -> list[tuple[Any, ...]]: ...
    def small_views_json(self) -> str: ...


def _context() -> tuple[Any, ...]:
    enums: list[list[Any]] = [
        list(Side),
        list(OrderType),
        list(TimeInForce),
        list(SelfTradePrevention),
        list(Reason),
        list(CancelReason),
    ]
    commands = [
        PlaceOrder,
        CancelOrder,
        AmendOrder,
        CancelAllOrders,
        DepositFunds,
        WithdrawFunds,
        OpenAccount,
        ListInstrument,
        HaltTrading,
        ResumeTrading,
    ]
    return (list(EVENT_TYPES), Outcome, enums, commands, Decimal, EventDecodeError)


def kernel_available() -> bool:
    """True when the Rust kernel is built, current and not disabled."""
    return _MODULE is not None and os.environ.get("TRADECORE_PURE_PYTHON", "") in ("", "0")


def kernel_status() -> str:
    if os.environ.get("TRADECORE_PURE_PYTHON", "") not in ("", "0"):
        return "disabled (TRADECORE_PURE_PYTHON=1)"
    return _STATUS


def _order(row: Iterable[Any]) -> Order:
    values = list(row)
    order = Order(*values[:15])
    order.resting = bool(values[15])
    return order


class FastExchange:
    """``Exchange`` with its decisions and state in the Rust kernel (same API, same events)."""

    __slots__ = (
        "_k",
        "apply",
        "apply_payload",
        "handle",
        "handle_encoded",
        "handle_encoded_many",
        "handle_many",
    )

    handle: Callable[[Command], Outcome]
    """Decide ``command``; every event returned has already been applied."""
    handle_encoded: Callable[[Command], tuple[Outcome, list[bytes]]]
    """``handle`` plus each outcome event's canonical JSON payload (``canonical_json``)."""
    handle_many: Callable[[Iterable[Command]], list[Outcome]]
    """``[handle(c) for c in commands]`` in one call; if a command raises, the exception
    propagates and the commands before it stay decided and applied (as with the loop)."""
    handle_encoded_many: Callable[[Iterable[Command]], list[tuple[Outcome, list[bytes]]]]
    """``[handle_encoded(c) for c in commands]`` in one call (exceptions as ``handle_many``)."""
    apply: Callable[[Event], None]
    """Mutate state by one event (replay-safe)."""
    apply_payload: Callable[[bytes], str]
    """Apply one canonical JSON payload; returns its stream key (``commands.core``)."""

    def __init__(self) -> None:
        if _MODULE is None:
            raise RuntimeError(f"the Rust kernel is not available: {_STATUS}")
        kernel = cast(_Kernel, _MODULE.Kernel(*_context()))
        self._k = kernel
        # Bound methods of the kernel itself: no Python frame per call.
        self.handle = kernel.handle
        self.handle_encoded = kernel.handle_encoded
        self.handle_many = kernel.handle_many
        self.handle_encoded_many = kernel.handle_encoded_many
        self.apply = kernel.apply
        self.apply_payload = kernel.apply_payload

    # ------------------------------------------------------------------ queries
    def balance(self, account_id: AccountId, asset: Asset) -> tuple[int, int]:
        return self._k.balance(account_id, asset)

    def fee_balance(self, asset: Asset) -> int:
        return self._k.fee_balance(asset)

    def order(self, order_id: OrderId) -> Order | None:
        row = self._k.order(order_id)
        return None if row is None else _order(row)

    def reference_price(self, symbol: Symbol) -> int:
        return self._k.reference_price(symbol)

    def apply_payloads(self, payloads: list[bytes]) -> int:
        return self._k.apply_payloads(payloads)

    def decimal_fast_path(self) -> bool:
        """True when ``Decimal`` arguments are read from their C layout (not ``str()``)."""
        return self._k.decimal_fast_path()

    # ------------------------------------------------------------------ views (copies)
    @property
    def orders(self) -> dict[OrderId, Order]:
        return {o.order_id: o for o in map(_order, self._k.orders())}

    def account_orders(self, account_id: AccountId) -> list[Order]:
        """The account's open orders, in arrival order (copies)."""
        return list(map(_order, self._k.orders_of(account_id)))

    @property
    def instruments(self) -> dict[Symbol, Instrument]:
        raw = self._views()["instruments"]
        return {Symbol(s): _instrument_from_dict(i) for s, i in raw.items()}

    @property
    def accounts(self) -> dict[AccountId, Account]:
        out: dict[AccountId, Account] = {}
        for acc_id, balances in self._views()["accounts"].items():
            account = Account(AccountId(acc_id))
            for asset, (available, reserved) in balances.items():
                account.balances[Asset(asset)] = Balance(available, reserved)
            out[account.account_id] = account
        return out

    @property
    def last_price(self) -> dict[Symbol, int]:
        return {Symbol(s): int(p) for s, p in self._views()["last_price"].items()}

    @property
    def fees(self) -> dict[Asset, int]:
        return {Asset(a): int(v) for a, v in self._views()["fees"].items()}

    @property
    def asset_decimals(self) -> dict[Asset, int]:
        return {Asset(a): int(v) for a, v in self._views()["asset_decimals"].items()}

    @property
    def books(self) -> dict[Symbol, OrderBook]:
        data: dict[str, Any] = json.loads(self._k.views_json())
        orders = {o["order_id"]: Order.from_dict(o) for o in data["orders"]}
        out: dict[Symbol, OrderBook] = {}
        for sym, sides in data["books"].items():
            book = OrderBook(Symbol(sym))
            for oid in sides["bids"]:
                book.bids.append(orders[oid])
            for oid in sides["asks"]:
                book.asks.append(orders[oid])
            out[Symbol(sym)] = book
        return out

    def _views(self) -> dict[str, Any]:
        """Accounts, instruments, prices, fees and asset decimals (books and open orders
        left empty): what the per-request views need, at a cost independent of the book."""
        data: dict[str, Any] = json.loads(self._k.small_views_json())
        return data

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """The same dict as ``Exchange.snapshot()`` (keys in sorted order)."""
        data: dict[str, Any] = json.loads(self._k.snapshot_json())
        return data

    def snapshot_json(self) -> str:
        """``snapshot()`` as its canonical JSON text (sorted keys, no spaces), written by the
        kernel: what the core hashes and stores, with no Python dict in between."""
        return self._k.snapshot_json()

    def state_hash(self) -> str:
        """sha256 of the canonical JSON of ``snapshot()``: equal to ``Exchange.state_hash()``."""
        return self._k.state_hash()

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> FastExchange:
        ex = cls()
        ex._k.load_snapshot_json(json.dumps(data))
        return ex


AnyExchange = Exchange | FastExchange


def make_exchange() -> AnyExchange:
    """A new, empty exchange: the Rust kernel when available, else the Python reference."""
    return FastExchange() if kernel_available() else Exchange()


def exchange_from_snapshot_text(text: str) -> AnyExchange:
    """An exchange restored from the JSON text of ``snapshot()``: the kernel reads the text
    itself (no Python dict in between); the Python reference parses it."""
    if kernel_available():
        ex = FastExchange()
        ex._k.load_snapshot_json(text)
        return ex
    return Exchange.from_snapshot(json.loads(text))


def exchange_from_snapshot(data: dict[str, Any]) -> Exchange | FastExchange:
    """An exchange restored from ``snapshot()`` data (either implementation's)."""
    return FastExchange.from_snapshot(data) if kernel_available() else Exchange.from_snapshot(data)

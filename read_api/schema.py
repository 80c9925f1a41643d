"""The GraphQL schema: queries over the read models and the log, mutations through the
REST command handlers, subscriptions over the live feed; and its limits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from projections.candles import INTERVALS
from read_api import live as channels
from read_api import queries
from read_api.context import Info
from read_api.errors import ReadApiError, account_forbidden, invalid_value
from read_api.history import account_state_at
from read_api.permissions import Audits, ReadsAccount, SignedIn
from read_api.scalars import SCALARS, BigInt
from read_api.types.account import Order, Portfolio
from read_api.types.alerts import Alert, AlertInput
from read_api.types.audit import AccountState, EventFilter, RecordedEvent
from read_api.types.commands import CommandOutcome, InstrumentInput, OrderInput
from read_api.types.live import LiveMessage
from read_api.types.market import (
    Candle,
    CandleSeries,
    Instrument,
    MarketStats,
    OrderBook,
    Trade,
    order_book,
)
from read_api.viewer import Viewer

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2_000
MAX_LIST = 1_000
MAX_CANDLES = 5_000


def _limit(value: int, most: int, field: str = "limit") -> int:
    if not 1 <= value <= most:
        raise invalid_value(field, f"{field} must be between 1 and {most}")
    return value


@strawberry.type
class Me:
    username: str
    role: str
    accounts: list[str]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[SignedIn], description="who this token belongs to")
    def me(self, info: Info) -> Me:
        viewer = info.context.require_viewer()
        return Me(username=viewer.username, role=viewer.role, accounts=sorted(viewer.accounts))

    @strawberry.field(permission_classes=[SignedIn])
    async def instruments(self, info: Info) -> list[Instrument]:
        return [Instrument.from_row(r) for r in await queries.instruments(info.context.db)]

    @strawberry.field(permission_classes=[SignedIn])
    async def instrument(self, info: Info, symbol: str) -> Instrument | None:
        row = await info.context.loaders.instrument.load(symbol)
        return None if row is None else Instrument.from_row(row)

    @strawberry.field(permission_classes=[ReadsAccount], description="one account")
    def portfolio(self, info: Info, account_id: str) -> Portfolio:
        return Portfolio(account_id=account_id)

    @strawberry.field(
        permission_classes=[SignedIn],
        description="several accounts: a trader's own by default; auditors and admins: any "
        "(default: every account with a balance)",
    )
    async def portfolios(self, info: Info, account_ids: list[str] | None = None) -> list[Portfolio]:
        viewer = info.context.require_viewer()
        if account_ids is None:
            if viewer.role == "trader":
                account_ids = sorted(viewer.accounts)
            else:
                account_ids = await queries.known_accounts(info.context.db)
        _limit(len(account_ids) or 1, MAX_LIST, "account_ids")
        for account_id in account_ids:
            if not viewer.may_read(account_id):
                raise account_forbidden(account_id)
        return [Portfolio(account_id=a) for a in account_ids]

    @strawberry.field(permission_classes=[SignedIn], description="null when unknown or not yours")
    async def order(self, info: Info, order_id: str) -> Order | None:
        row = await info.context.loaders.order.load(order_id)
        if row is None or not info.context.require_viewer().may_read(row["account_id"]):
            return None
        return Order.from_row(row)

    @strawberry.field(permission_classes=[SignedIn], description="newest first")
    async def trades(
        self,
        info: Info,
        symbol: str,
        since: datetime | None = None,
        until: datetime | None = None,
        before_trade_id: BigInt | None = None,
        limit: int = 100,
    ) -> list[Trade]:
        rows = await queries.trades(
            info.context.db, symbol, since, until, before_trade_id, _limit(limit, MAX_LIST)
        )
        return [Trade.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[SignedIn],
        description="bars in [since, until), oldest first; without since, the latest `limit`",
    )
    async def candles(
        self,
        info: Info,
        symbol: str,
        interval: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        rows = await _candle_rows(info, symbol, interval, since, until, limit)
        return [
            Candle(
                bucket=r["bucket"],
                open=r["open"],
                high=r["high"],
                low=r["low"],
                close=r["close"],
                volume=r["volume"],
                quote_volume=r["quote_volume"],
                vwap=r["vwap"],
                trade_count=r["trade_count"],
                first_trade_id=r["first_trade_id"],
                last_trade_id=r["last_trade_id"],
            )
            for r in rows
        ]

    @strawberry.field(
        permission_classes=[SignedIn],
        description="the same bars as `candles`, as compact rows (for charts)",
    )
    async def candle_series(
        self,
        info: Info,
        symbol: str,
        interval: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> CandleSeries:
        if interval not in INTERVALS:
            raise invalid_value("interval", f"interval is one of {', '.join(INTERVALS)}")
        rows = await queries.candle_series(
            info.context.db, symbol, interval, since, until, _limit(limit, MAX_CANDLES)
        )
        return CandleSeries.of(symbol, interval, rows)

    @strawberry.field(permission_classes=[SignedIn])
    async def order_book(self, info: Info, symbol: str, depth: int = 20) -> OrderBook:
        return await order_book(info, symbol, _limit(depth, 500, "depth"))

    @strawberry.field(permission_classes=[SignedIn])
    async def market_stats(self, info: Info, symbol: str) -> MarketStats | None:
        row = await info.context.loaders.stats.load(symbol)
        return None if row is None else MarketStats.from_row(row)

    @strawberry.field(permission_classes=[SignedIn], description="every symbol's 24h statistics")
    async def all_market_stats(self, info: Info) -> list[MarketStats]:
        return [MarketStats.from_row(r) for r in await queries.all_stats(info.context.db)]

    @strawberry.field(
        permission_classes=[SignedIn],
        description="price alerts, newest first: a trader's own (every owned account by "
        "default); auditors and admins give the account",
    )
    async def alerts(
        self,
        info: Info,
        account_id: str | None = None,
        status: str | None = None,
        symbol: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        viewer = info.context.require_viewer()
        accounts = _own_accounts(viewer, account_id)
        if status is not None and status not in queries.ALERT_STATUSES:
            raise invalid_value("status", f"status is one of {', '.join(queries.ALERT_STATUSES)}")
        rows = await queries.alerts_of(
            info.context.db, accounts, status, symbol, _limit(limit, MAX_LIST)
        )
        return [Alert.from_row(r) for r in rows]

    @strawberry.field(permission_classes=[Audits], description="the committed log, in order")
    async def events(
        self, info: Info, filter: EventFilter | None = None, limit: int = 100
    ) -> list[RecordedEvent]:
        f = filter or EventFilter()
        where = queries.EventFilter(
            stream_id=f.stream_id,
            account_id=f.account_id,
            symbol=f.symbol,
            event_types=tuple(f.event_types or ()),
            since=f.since,
            until=f.until,
            after_position=int(f.after_position or 0),
            to_position=None if f.to_position is None else int(f.to_position),
        )
        if where.stream_id is not None:
            _check_uuid(where.stream_id)
        rows = await queries.events(info.context.db, where, _limit(limit, MAX_LIST))
        return [RecordedEvent.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[Audits],
        description="the account as of a log position or a time (give one), replayed from the log",
    )
    async def account_state(
        self,
        info: Info,
        account_id: str,
        position: BigInt | None = None,
        at: datetime | None = None,
    ) -> AccountState:
        db = info.context.db
        if (position is None) == (at is None):
            raise invalid_value("position", "give exactly one of position and at")
        if at is not None:
            upto = await queries.last_position_at(db, at)
        else:
            upto = int(position or 0)
            if upto < 0:
                raise invalid_value("position", "position must not be negative")
            upto = min(upto, await queries.head_position(db))
        return AccountState.of(await account_state_at(db, account_id, upto))


async def _candle_rows(
    info: Info,
    symbol: str,
    interval: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Any]:
    if interval not in INTERVALS:
        raise invalid_value("interval", f"interval is one of {', '.join(INTERVALS)}")
    return await queries.candles(
        info.context.db, symbol, interval, since, until, _limit(limit, MAX_CANDLES)
    )


def _check_uuid(text: str) -> None:
    try:
        uuid.UUID(text)
    except ValueError:
        raise invalid_value("stream_id", "stream_id is the stream's uuid") from None


# --- mutations: the REST command handlers, in process ----------------------------------------


def _seg(value: str) -> str:
    return quote(value, safe="")


async def _command(
    info: Info,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    idempotency_key: str | None,
    correlation_id: str | None,
) -> CommandOutcome:
    viewer = info.context.require_viewer()
    headers: dict[str, str] = {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if correlation_id is not None:
        headers["X-Correlation-Id"] = correlation_id
    reply = await info.context.gateway.command(viewer, method, path, body, headers)
    return CommandOutcome.from_body(reply.body, reply.replayed)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@strawberry.type(
    description="Each mutation is the REST command of the same name (docs/api.md): same "
    "roles, validation, idempotency and outcome."
)
class Mutation:
    @strawberry.mutation(permission_classes=[SignedIn])
    async def place_order(
        self,
        info: Info,
        account_id: str,
        order: OrderInput,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        body = _drop_none(strawberry.asdict(order))
        path = f"/accounts/{_seg(account_id)}/orders"
        return await _command(info, "POST", path, body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def cancel_order(
        self,
        info: Info,
        account_id: str,
        order_id: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/orders/{_seg(order_id)}"
        return await _command(info, "DELETE", path, None, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def amend_order(
        self,
        info: Info,
        account_id: str,
        order_id: str,
        new_price: str | None = None,
        new_quantity: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/orders/{_seg(order_id)}"
        body = _drop_none({"new_price": new_price, "new_quantity": new_quantity})
        return await _command(info, "PATCH", path, body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def cancel_all_orders(
        self,
        info: Info,
        account_id: str,
        symbol: str | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/orders"
        if symbol is not None:
            path += f"?symbol={_seg(symbol)}"
        return await _command(info, "DELETE", path, None, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def create_alert(
        self,
        info: Info,
        account_id: str,
        alert: AlertInput,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        body = _drop_none(strawberry.asdict(alert))
        path = f"/accounts/{_seg(account_id)}/alerts"
        return await _command(info, "POST", path, body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def cancel_alert(
        self,
        info: Info,
        account_id: str,
        alert_id: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/alerts/{_seg(alert_id)}"
        return await _command(info, "DELETE", path, None, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def open_account(
        self,
        info: Info,
        account_id: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        body = {"account_id": account_id}
        return await _command(info, "POST", "/accounts", body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def deposit_funds(
        self,
        info: Info,
        account_id: str,
        asset: str,
        amount: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/deposits"
        body = {"asset": asset, "amount": amount}
        return await _command(info, "POST", path, body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def withdraw_funds(
        self,
        info: Info,
        account_id: str,
        asset: str,
        amount: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/accounts/{_seg(account_id)}/withdrawals"
        body = {"asset": asset, "amount": amount}
        return await _command(info, "POST", path, body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def list_instrument(
        self,
        info: Info,
        instrument: InstrumentInput,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        body = strawberry.asdict(instrument)
        return await _command(info, "POST", "/instruments", body, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def halt_trading(
        self,
        info: Info,
        symbol: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/instruments/{_seg(symbol)}/halt"
        return await _command(info, "POST", path, None, idempotency_key, correlation_id)

    @strawberry.mutation(permission_classes=[SignedIn])
    async def resume_trading(
        self,
        info: Info,
        symbol: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandOutcome:
        path = f"/instruments/{_seg(symbol)}/resume"
        return await _command(info, "POST", path, None, idempotency_key, correlation_id)


# --- subscriptions ----------------------------------------------------------------------------


async def _stream(info: Info, names: list[str]) -> AsyncGenerator[LiveMessage, None]:
    """The channels' messages until the client stops, or its token expires."""
    context = info.context
    context.require_viewer()
    if context.live is None:
        raise ReadApiError("live_unavailable", "live data is not served here", status=503)
    try:
        async for message in channels.merged(context.live, names):
            context.require_viewer()  # an expired token ends the subscription
            yield LiveMessage.of(message)
    except ValueError as exc:  # the feed does not know the channel or its symbol
        raise invalid_value("channel", str(exc)) from None


def _channel(build: Any, *args: str) -> str:
    try:
        name: str = build(*args)
    except channels.BadChannel as exc:
        raise invalid_value("channel", str(exc)) from None
    return name


def _own_accounts(viewer: Viewer, account_id: str | None) -> list[str]:
    if account_id is not None:
        if not viewer.may_read(account_id):
            raise account_forbidden(account_id)
        return [account_id]
    if viewer.role != "trader":
        raise invalid_value("account_id", "give the account_id to watch")
    if not viewer.accounts:
        raise invalid_value("account_id", "this user owns no account")
    return sorted(viewer.accounts)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="trades of a symbol as they execute")
    async def trades(self, info: Info, symbol: str) -> AsyncGenerator[LiveMessage, None]:
        async for message in _stream(info, [_channel(channels.trades_channel, symbol)]):
            yield message

    @strawberry.subscription(description="the symbol's current bar of one interval, as it moves")
    async def candles(
        self, info: Info, symbol: str, interval: str
    ) -> AsyncGenerator[LiveMessage, None]:
        name = _channel(channels.candles_channel, symbol, interval)
        async for message in _stream(info, [name]):
            yield message

    @strawberry.subscription(description="order-book changes (L2 deltas)")
    async def book(self, info: Info, symbol: str) -> AsyncGenerator[LiveMessage, None]:
        async for message in _stream(info, [_channel(channels.book_channel, symbol)]):
            yield message

    @strawberry.subscription(description="24-hour statistics (the ticker)")
    async def market_stats(self, info: Info, symbol: str) -> AsyncGenerator[LiveMessage, None]:
        async for message in _stream(info, [_channel(channels.ticker_channel, symbol)]):
            yield message

    @strawberry.subscription(
        description="updates of the caller's own orders (every owned account by default)"
    )
    async def my_orders(
        self, info: Info, account_id: str | None = None
    ) -> AsyncGenerator[LiveMessage, None]:
        viewer = info.context.require_viewer()
        names = [_channel(channels.orders_channel, a) for a in _own_accounts(viewer, account_id)]
        async for message in _stream(info, names):
            yield message

    @strawberry.subscription(
        description="the caller's own alerts as they are created, trigger or are canceled"
    )
    async def my_alerts(
        self, info: Info, account_id: str | None = None
    ) -> AsyncGenerator[LiveMessage, None]:
        viewer = info.context.require_viewer()
        names = [_channel(channels.alerts_channel, a) for a in _own_accounts(viewer, account_id)]
        async for message in _stream(info, names):
            yield message


def build_schema(*, production: bool) -> strawberry.Schema:
    """The schema with its limits; in production introspection is off."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True, scalar_map=SCALARS, disable_field_suggestions=production
        ),
    )

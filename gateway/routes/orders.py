"""A trader's orders on one of its accounts: place, cancel, amend, cancel all, list open."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from domain.commands import AmendOrder, CancelAllOrders, CancelOrder, PlaceOrder
from domain.values import (
    AccountId,
    ClientOrderId,
    OrderId,
    OrderType,
    SelfTradePrevention,
    Side,
    Symbol,
    TimeInForce,
)
from gateway.commanding import (
    CommandHeaders,
    Meta,
    command_headers,
    execute,
    fingerprint,
    order_id_for,
)
from gateway.deps import CurrentPrincipal, Principal, Services
from gateway.errors import documented
from gateway.schemas import (
    ID_PATTERN,
    SYMBOL_PATTERN,
    CommandOutcome,
    OrderAmend,
    OrderCreate,
    OrderOut,
)
from gateway.services import GatewayServices

router = APIRouter(prefix="/accounts/{account_id}/orders", tags=["orders"])

AccountPath = Annotated[str, Path(pattern=ID_PATTERN)]
OrderPath = Annotated[str, Path(pattern=ID_PATTERN)]
Headers = Annotated[CommandHeaders, Depends(command_headers)]
WRITE_ERRORS = documented(400, 401, 403, 409, 413, 422, 429, 503)
# The enums by value (OrderCreate's literals): a dict lookup instead of Enum(value) per order.
_SIDES = {x.value: x for x in Side}
_ORDER_TYPES = {x.value: x for x in OrderType}
_TIME_IN_FORCE = {x.value: x for x in TimeInForce}
_STP = {x.value: x for x in SelfTradePrevention}


@router.post("", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Place an order")
async def place_order(
    account_id: AccountPath,
    body: OrderCreate,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """Accepted or rejected (with the reason), with the events and their log positions.
    Retrying with the same ``client_order_id`` returns the first outcome (``duplicate``)."""
    return await submit_order(services, principal, account_id, body, headers)


async def submit_order(
    services: GatewayServices,
    principal: Principal,
    account_id: str,
    body: OrderCreate,
    headers: CommandHeaders,
) -> JSONResponse:
    """`place_order` once its inputs are checked (also the order-entry lane, gateway.lane)."""
    principal.require_trade(account_id)
    client_order_id = body.client_order_id or headers.idempotency_key or uuid.uuid4().hex
    order_id = order_id_for(account_id, client_order_id)

    def build(meta: Meta) -> PlaceOrder:
        return PlaceOrder(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            symbol=Symbol(body.symbol),
            side=_SIDES[body.side],
            order_type=_ORDER_TYPES[body.order_type],
            order_id=OrderId(order_id),
            client_order_id=ClientOrderId(client_order_id),
            price=body.price,
            quantity=body.quantity,
            quote_budget=body.quote_budget,
            time_in_force=_TIME_IN_FORCE[body.time_in_force],
            post_only=body.post_only,
            stp=_STP[body.stp],
        )

    def print_() -> str:
        return fingerprint("POST", f"/accounts/{account_id}/orders", body.model_dump(mode="json"))

    return await execute(services, principal.username, headers, print_, build, order_id=order_id)


@router.delete(
    "/{order_id}", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Cancel an order"
)
async def cancel_order(
    account_id: AccountPath,
    order_id: OrderPath,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    principal.require_trade(account_id)

    def build(meta: Meta) -> CancelOrder:
        return CancelOrder(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            order_id=OrderId(order_id),
        )

    print_ = fingerprint("DELETE", f"/accounts/{account_id}/orders/{order_id}", None)
    return await execute(services, principal.username, headers, print_, build, order_id=order_id)


@router.patch(
    "/{order_id}", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Amend an order"
)
async def amend_order(
    account_id: AccountPath,
    order_id: OrderPath,
    body: OrderAmend,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
) -> JSONResponse:
    """New price and/or open quantity; only a pure reduction keeps time priority."""
    principal.require_trade(account_id)

    def build(meta: Meta) -> AmendOrder:
        return AmendOrder(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            order_id=OrderId(order_id),
            new_price=body.new_price,
            new_quantity=body.new_quantity,
        )

    def print_() -> str:
        path = f"/accounts/{account_id}/orders/{order_id}"
        return fingerprint("PATCH", path, body.model_dump(mode="json"))

    return await execute(services, principal.username, headers, print_, build, order_id=order_id)


@router.delete(
    "", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Cancel all open orders"
)
async def cancel_all_orders(
    account_id: AccountPath,
    services: Services,
    principal: CurrentPrincipal,
    headers: Headers,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
) -> JSONResponse:
    principal.require_trade(account_id)

    def build(meta: Meta) -> CancelAllOrders:
        return CancelAllOrders(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            account_id=AccountId(account_id),
            symbol=None if symbol is None else Symbol(symbol),
        )

    print_ = fingerprint("DELETE", f"/accounts/{account_id}/orders", symbol)
    return await execute(services, principal.username, headers, print_, build)


@router.get(
    "",
    response_model=list[OrderOut],
    responses=documented(401, 403, 422, 429),
    summary="Open orders",
)
async def list_orders(
    account_id: AccountPath, services: Services, principal: CurrentPrincipal
) -> list[OrderOut]:
    """The account's open orders, from the core's memory (moves to the read models)."""
    principal.require_read(account_id)
    exchange = services.core.exchange
    instruments = exchange.instruments  # once: with the Rust kernel each view is a copy
    out = []
    for order in exchange.account_orders(AccountId(account_id)):
        inst = instruments.get(order.symbol)
        price = "" if inst is None else str(inst.ticks_to_price(order.price_ticks))
        qty = "" if inst is None else str(inst.lots_to_qty(order.remaining_lots))
        out.append(
            OrderOut(
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side.value,
                order_type=order.order_type.value,
                time_in_force=order.time_in_force.value,
                price=price,
                remaining_quantity=qty,
                price_ticks=order.price_ticks,
                remaining_lots=order.remaining_lots,
                resting=order.resting,
            )
        )
    return out

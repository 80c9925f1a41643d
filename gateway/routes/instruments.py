"""Instruments: listing them (anyone signed in reads; admin lists new ones), halts, resumes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from domain.commands import HaltTrading, ListInstrument, ResumeTrading
from domain.values import Asset, Symbol
from gateway.commanding import CommandHeaders, Meta, command_headers, execute, fingerprint
from gateway.deps import CurrentPrincipal, Services
from gateway.errors import documented
from gateway.ports import Role
from gateway.schemas import SYMBOL_PATTERN, CommandOutcome, InstrumentCreate, InstrumentOut

router = APIRouter(prefix="/instruments", tags=["instruments"])

SymbolPath = Annotated[str, Path(pattern=SYMBOL_PATTERN)]
Headers = Annotated[CommandHeaders, Depends(command_headers)]
WRITE_ERRORS = documented(400, 401, 403, 409, 413, 422, 429, 503)


@router.get("", response_model=list[InstrumentOut], responses=documented(401, 429))
async def list_instruments(services: Services, _: CurrentPrincipal) -> list[InstrumentOut]:
    """Every listed instrument and whether it trades."""
    exchange = services.core.exchange
    return [
        InstrumentOut(
            symbol=inst.symbol,
            base=inst.base,
            quote=inst.quote,
            tick_size=str(inst.tick_size),
            lot_size=str(inst.lot_size),
            status=inst.status.value,
            last_price=str(inst.ticks_to_price(exchange.reference_price(inst.symbol))),
            price_band_bps=inst.price_band_bps,
            maker_fee_bps=inst.maker_fee_bps,
            taker_fee_bps=inst.taker_fee_bps,
        )
        for _, inst in sorted(exchange.instruments.items())
    ]


@router.post(
    "", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="List an instrument"
)
async def list_instrument(
    body: InstrumentCreate, services: Services, principal: CurrentPrincipal, headers: Headers
) -> JSONResponse:
    """Admin only."""
    principal.require_role(Role.ADMIN)

    def build(meta: Meta) -> ListInstrument:
        return ListInstrument(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            symbol=Symbol(body.symbol),
            base=Asset(body.base),
            quote=Asset(body.quote),
            base_decimals=body.base_decimals,
            quote_decimals=body.quote_decimals,
            tick_size=body.tick_size,
            lot_size=body.lot_size,
            min_qty=body.min_qty,
            max_qty=body.max_qty,
            reference_price=body.reference_price,
            price_band_bps=body.price_band_bps,
            maker_fee_bps=body.maker_fee_bps,
            taker_fee_bps=body.taker_fee_bps,
        )

    print_ = fingerprint("POST", "/instruments", body.model_dump(mode="json"))
    return await execute(services, principal.username, headers, print_, build)


@router.post(
    "/{symbol}/halt", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Halt"
)
async def halt(
    symbol: SymbolPath, services: Services, principal: CurrentPrincipal, headers: Headers
) -> JSONResponse:
    """Admin only. New orders and amends are rejected; cancels still work."""
    principal.require_role(Role.ADMIN)

    def build(meta: Meta) -> HaltTrading:
        return HaltTrading(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            symbol=Symbol(symbol),
        )

    print_ = fingerprint("POST", f"/instruments/{symbol}/halt", None)
    return await execute(services, principal.username, headers, print_, build)


@router.post(
    "/{symbol}/resume", response_model=CommandOutcome, responses=WRITE_ERRORS, summary="Resume"
)
async def resume(
    symbol: SymbolPath, services: Services, principal: CurrentPrincipal, headers: Headers
) -> JSONResponse:
    """Admin only."""
    principal.require_role(Role.ADMIN)

    def build(meta: Meta) -> ResumeTrading:
        return ResumeTrading(
            command_id=meta.command_id,
            correlation_id=meta.correlation_id,
            timestamp_ns=meta.timestamp_ns,
            symbol=Symbol(symbol),
        )

    print_ = fingerprint("POST", f"/instruments/{symbol}/resume", None)
    return await execute(services, principal.username, headers, print_, build)

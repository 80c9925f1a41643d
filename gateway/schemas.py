"""Request and response bodies of the REST API (separate models for each direction).

Decimals travel as strings (integers are accepted); binary floats never get this far
(gateway.body refuses them). Unknown fields are refused, and every refusal names its field.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from domain.values import MAX_DIGITS, decimal_out_of_range

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
ASSET_PATTERN = r"^[A-Za-z0-9]{1,16}$"
DECIMAL_PATTERN = r"^-?[0-9]{1,24}(\.[0-9]{1,18})?$"
INT_BOUND = 10**24
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
SymbolStr = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
AssetStr = Annotated[str, StringConstraints(pattern=ASSET_PATTERN)]


def _decimal(raw: Any) -> Decimal:
    if isinstance(raw, Decimal):
        return raw
    if isinstance(raw, float):
        raise PydanticCustomError("float_not_allowed", "binary floats are refused: send a string")
    if isinstance(raw, int) and not isinstance(raw, bool):
        if abs(raw) > INT_BOUND:
            raise PydanticCustomError("invalid_value", "out of range")
        return Decimal(raw)
    if not isinstance(raw, str):
        raise PydanticCustomError("wrong_type", "must be a decimal string")
    if not _DECIMAL_RE.match(raw):
        raise PydanticCustomError("not_a_decimal", "{raw!r} is not a decimal", {"raw": raw})
    value = Decimal(raw)
    if decimal_out_of_range(value) is not None:  # (the pattern already refuses exponents)
        raise PydanticCustomError(
            "too_many_digits", "more than {limit} significant digits", {"limit": MAX_DIGITS}
        )
    return value


DecimalIn = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DECIMAL_PATTERN},
                {"type": "integer", "minimum": -INT_BOUND, "maximum": INT_BOUND},
            ],
            "description": 'a decimal string such as "30000.50" (or an integer)',
        }
    ),
]
SmallInt = Annotated[StrictInt, Field(ge=0, le=100_000)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderCreate(_Request):
    symbol: SymbolStr
    side: Literal["buy", "sell"]
    order_type: Literal["limit", "market"] = "limit"
    price: DecimalIn | None = Field(None, description="null for a market order")
    quantity: DecimalIn | None = Field(None, description="null for a market buy by budget")
    quote_budget: DecimalIn | None = None
    time_in_force: Literal["gtc", "ioc", "fok"] = "gtc"
    post_only: StrictBool = False
    stp: Literal["cancel_taker", "cancel_maker", "cancel_both"] = "cancel_taker"
    client_order_id: Id | None = Field(
        None,
        description="your id for this order; a retry with the same one returns the first "
        "outcome. Defaults to the Idempotency-Key header, else a new id.",
    )


class OrderAmend(_Request):
    new_price: DecimalIn | None = None
    new_quantity: DecimalIn | None = None


class FundsMove(_Request):
    asset: AssetStr
    amount: DecimalIn


class AccountCreate(_Request):
    account_id: Id


class InstrumentCreate(_Request):
    symbol: SymbolStr
    base: AssetStr
    quote: AssetStr
    base_decimals: Annotated[StrictInt, Field(ge=0, le=18)]
    quote_decimals: Annotated[StrictInt, Field(ge=0, le=18)]
    tick_size: DecimalIn
    lot_size: DecimalIn
    min_qty: DecimalIn
    max_qty: DecimalIn
    reference_price: DecimalIn
    price_band_bps: SmallInt
    maker_fee_bps: SmallInt
    taker_fee_bps: SmallInt


class EventOut(BaseModel):
    position: int | None = Field(description="global log position; null for a replayed outcome")
    event: dict[str, Any] = Field(description="the event as in docs/events.md")


class CommandOutcome(BaseModel):
    command_id: str
    correlation_id: str
    outcome: Literal["accepted", "rejected"]
    reason: str | None = Field(description="machine-readable reason of a rejection")
    duplicate: bool = Field(
        description="true when the core returned the first outcome of this client order id"
    )
    order_id: str | None = None
    events: list[EventOut]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str | None = None


class MeOut(BaseModel):
    username: str
    role: str
    accounts: list[str]


class BalanceOut(BaseModel):
    asset: str
    available: str
    reserved: str
    available_atoms: int
    reserved_atoms: int


class OrderOut(BaseModel):
    order_id: str
    client_order_id: str
    account_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    price: str
    remaining_quantity: str
    price_ticks: int
    remaining_lots: int
    resting: bool


class InstrumentOut(BaseModel):
    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    status: str
    last_price: str = Field(description="last trade price, else the listing's reference price")
    price_band_bps: int
    maker_fee_bps: int
    taker_fee_bps: int


class RecordedEventOut(BaseModel):
    position: int
    event_id: str
    stream_id: str
    stream_version: int
    event_type: str
    schema_version: int
    occurred_at_ns: int
    command_id: str
    correlation_id: str
    hash: str
    event: dict[str, Any]

"""Commands as JSON objects (docs/commands.md): strict decoding with a reason for every refusal."""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from domain.commands import (
    AmendOrder,
    CancelAlert,
    CancelAllOrders,
    CancelOrder,
    Command,
    CreateAlert,
    DepositFunds,
    HaltTrading,
    ListInstrument,
    OpenAccount,
    PlaceOrder,
    ResumeTrading,
    TriggerAlert,
    WithdrawFunds,
)
from domain.values import MAX_DIGITS, MAX_EXPONENT, decimal_out_of_range

COMMAND_TYPES: dict[str, type[Command]] = {
    "list_instrument": ListInstrument,
    "halt_trading": HaltTrading,
    "resume_trading": ResumeTrading,
    "open_account": OpenAccount,
    "deposit_funds": DepositFunds,
    "withdraw_funds": WithdrawFunds,
    "place_order": PlaceOrder,
    "cancel_order": CancelOrder,
    "amend_order": AmendOrder,
    "cancel_all_orders": CancelAllOrders,
    "create_alert": CreateAlert,
    "cancel_alert": CancelAlert,
    "trigger_alert": TriggerAlert,
}
TYPE_NAMES = {cls: name for name, cls in COMMAND_TYPES.items()}


class CommandDecodeError(ValueError):
    """The object is not a valid command; `field` names the culprit where there is one."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = reason
        self.field = field


def _decode(hint: Any, raw: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if raw is None else _decode(args[0], raw, name)
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return _decode(supertype, raw, name)
    if raw is None:
        raise CommandDecodeError("missing_field", "is required", name)
    if hint is Decimal:
        if isinstance(raw, float):
            raise CommandDecodeError(
                "float_not_allowed", "binary floats are refused: send a decimal string", name
            )
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise CommandDecodeError("wrong_type", "must be a decimal string", name)
        try:
            value = Decimal(raw) if isinstance(raw, int) else Decimal(raw.strip())
        except InvalidOperation:
            raise CommandDecodeError("not_a_decimal", f"{raw!r} is not a decimal", name) from None
        if not value.is_finite():
            raise CommandDecodeError("not_a_decimal", f"{raw!r} is not a finite decimal", name)
        if decimal_out_of_range(value) is not None:
            raise CommandDecodeError(
                "out_of_range",
                f"at most {MAX_DIGITS} significant digits and an exponent within ±{MAX_EXPONENT}",
                name,
            )
        return value
    if hint is bool:
        if not isinstance(raw, bool):
            raise CommandDecodeError("wrong_type", "must be true or false", name)
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise CommandDecodeError("wrong_type", "must be an integer", name)
        return raw
    if hint is str:
        if not isinstance(raw, str) or not raw or len(raw) > 128:
            raise CommandDecodeError("wrong_type", "must be a string of 1 to 128 characters", name)
        return raw
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(raw)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise CommandDecodeError("invalid_value", f"must be one of {allowed}", name) from None
    raise TypeError(f"no decoder for {hint!r}")


_HINTS = {cls: typing.get_type_hints(cls) for cls in COMMAND_TYPES.values()}


def command_from_json(obj: Any) -> Command:
    """Build a command from a decoded JSON object; unknown or missing fields are refused."""
    if not isinstance(obj, dict):
        raise CommandDecodeError("wrong_type", "a command is a JSON object")
    kind = obj.get("type")
    cls = COMMAND_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise CommandDecodeError(
            "unknown_command", f"unknown type {kind!r}; one of {', '.join(COMMAND_TYPES)}", "type"
        )
    data = dict(obj)
    del data["type"]
    data.setdefault("correlation_id", data.get("command_id"))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CommandDecodeError("unknown_field", f"not a field of {kind}", unknown[0])
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in data:
            has_default = field.default is not dataclasses.MISSING
            if has_default:
                continue
            raise CommandDecodeError("missing_field", "is required", name)
        kwargs[name] = _decode(_HINTS[cls][name], data[name], name)
    return cls(**kwargs)


def command_to_json(command: Command) -> dict[str, Any]:
    out: dict[str, Any] = {"type": TYPE_NAMES[type(command)]}
    for field in dataclasses.fields(command):
        value = getattr(command, field.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Decimal):
            value = str(value)
        out[field.name] = value
    return out

"""One error shape for every refusal: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from commands.core import CoreStopped
from gateway.ports import ServiceUnavailable


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. `float_not_allowed`")
    message: str
    details: dict[str, Any] = Field(
        default_factory=dict, description="e.g. `field` (the culprit) and `reason`"
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """Raised anywhere in the gateway; answered with the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


# Pydantic's error types, in the words of docs/commands.md.
_REASONS = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "literal_error": "invalid_value",
    "enum": "invalid_value",
    "string_pattern_mismatch": "invalid_value",
    "string_too_short": "invalid_value",
    "string_too_long": "invalid_value",
    "greater_than_equal": "invalid_value",
    "less_than_equal": "invalid_value",
    "greater_than": "invalid_value",
    "less_than": "invalid_value",
    "json_invalid": "malformed_json",
}


def _reason(error_type: str) -> str:
    if error_type in _REASONS:
        return _REASONS[error_type]
    if error_type.endswith("_type") or error_type.endswith("_parsing"):
        return "wrong_type"
    return error_type


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "type": "invalid", "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    reason = _reason(str(first.get("type", "invalid")))
    if reason == "missing_field":
        message = "is required"
    elif reason == "unknown_field":
        message = "is not a field of this request"
    else:
        message = str(first.get("msg", "is invalid"))
    return error_response(
        422,
        reason,
        f"{field}: {message}" if field else message,
        {
            "field": field,
            "reason": reason,
            "errors": [
                {"field": _field(tuple(e.get("loc", ()))), "reason": _reason(str(e["type"]))}
                for e in errors
            ],
        },
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def service_error(exc: Exception) -> JSONResponse | None:
    """The response to an error of the services behind a route (the handlers below), or None
    when ``exc`` is not one of them; also used by the order-entry lane (gateway.lane)."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, CoreStopped):
        return error_response(503, "core_unavailable", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, ServiceUnavailable):
        return error_response(503, "service_unavailable", str(exc), headers={"Retry-After": "5"})
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def _service(_: Request, exc: Exception) -> JSONResponse:
        response = service_error(exc)
        assert response is not None
        return response

    for kind in (ApiError, CoreStopped, ServiceUnavailable):
        app.add_exception_handler(kind, _service)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses a route may answer with."""
    words = {
        400: "Malformed JSON, or a binary float where a decimal string belongs",
        401: "Missing, forged, expired or revoked token",
        403: "The role or the account does not allow this",
        404: "Not found",
        409: "The first request with this Idempotency-Key is still running",
        413: "Body larger than the limit",
        422: "Invalid field (named in details.field)",
        429: "Rate limit reached; see Retry-After",
        503: "The core or a service is not available",
    }
    return {s: {"model": ErrorResponse, "description": words[s]} for s in statuses}

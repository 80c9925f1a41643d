"""GraphQL errors with the REST API's codes in ``extensions`` (``code``, ``status``,
``details``), so a client handles a refusal the same way over either API."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class ReadApiError(GraphQLError):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        details: dict[str, Any] | None = None,
    ) -> None:
        extensions: dict[str, Any] = {"code": code, "status": status}
        if details:
            extensions["details"] = details
        super().__init__(message, extensions=extensions)
        self.code = code
        self.status = status


def not_authenticated() -> ReadApiError:
    return ReadApiError(
        "not_authenticated",
        "send Authorization: Bearer <access token> (over a websocket: in connection_init)",
        status=401,
    )


def role_forbidden(message: str) -> ReadApiError:
    return ReadApiError("role_forbidden", message, status=403)


def account_forbidden(account_id: str) -> ReadApiError:
    return ReadApiError("account_forbidden", f"account {account_id!r} is not yours", status=403)


def invalid_value(field: str, message: str) -> ReadApiError:
    return ReadApiError(
        "invalid_value", message, status=422, details={"field": field, "reason": "invalid_value"}
    )

"""Request dependencies: the services, the authenticated caller and what it may touch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2

from gateway.errors import ApiError, forbidden, unauthorized
from gateway.ports import Role, User
from gateway.services import GatewayServices
from gateway.tokens import AccessClaims


async def get_services(request: Request) -> GatewayServices:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hand-off per request and per dependency.
    services: GatewayServices = request.app.state.services
    return services


Services = Annotated[GatewayServices, Depends(get_services)]

oauth2_scheme = OAuth2(
    flows=OAuthFlowsModel(
        password=OAuthFlowPassword(tokenUrl="/auth/token"),
        clientCredentials=OAuthFlowClientCredentials(tokenUrl="/auth/token"),
    ),
    scheme_name="OAuth2",
    description="Bearer access token from POST /auth/token",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of this request."""

    claims: AccessClaims

    @property
    def user(self) -> User:
        return self.claims.user

    @property
    def username(self) -> str:
        return self.claims.user.username

    def may_read(self, account_id: str) -> bool:
        user = self.user
        return user.role is not Role.TRADER or account_id in user.accounts

    def require_read(self, account_id: str) -> None:
        if not self.may_read(account_id):
            raise forbidden("account_forbidden", f"account {account_id!r} is not yours")

    def require_trade(self, account_id: str) -> None:
        """Only a trader acts on accounts, and only on its own."""
        if self.user.role is not Role.TRADER:
            raise forbidden("role_forbidden", f"a {self.user.role} does not trade")
        if account_id not in self.user.accounts:
            raise forbidden("account_forbidden", f"account {account_id!r} is not yours")

    def require_role(self, *roles: Role) -> None:
        if self.user.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise forbidden("role_forbidden", f"only {allowed} may do this")


async def current_principal(
    services: Services, authorization: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """A valid, unrevoked bearer token, within its user's rate limit."""
    if not authorization:
        raise unauthorized("not_authenticated", "send Authorization: Bearer <access token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("not_authenticated", "send Authorization: Bearer <access token>")
    return await admit(services, services.tokens.decode_access(token.strip()))


async def admit(services: GatewayServices, claims: AccessClaims) -> Principal:
    """The caller of a verified token, unless the token is revoked or the user over its limit."""
    config = services.config
    username = claims.user.username
    if services.admission is not None:
        revoked, wait = await services.admission.admit(
            claims.jti, claims.family, username, claims.issued_at, f"user:{username}",
            config.rate_limit, config.rate_window_s,
        )  # fmt: skip
    else:
        revoked = await services.revocations.is_revoked(
            claims.jti, claims.family, username, claims.issued_at
        )
        wait = None
        if not revoked:
            wait = await services.limiter.hit(
                f"user:{username}", config.rate_limit, config.rate_window_s
            )
    if revoked:
        raise unauthorized("token_revoked", "the token was revoked: log in again")
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {config.rate_limit} requests in {config.rate_window_s} s",
            {"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )
    return Principal(claims)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]

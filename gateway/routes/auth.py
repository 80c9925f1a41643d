"""POST /auth/token (OAuth2 password, client credentials, refresh token), logout, /auth/me."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Response

from gateway.deps import CurrentPrincipal, Services
from gateway.errors import ApiError, documented, unauthorized
from gateway.ports import User
from gateway.schemas import MeOut, TokenOut
from gateway.services import GatewayServices

router = APIRouter(prefix="/auth", tags=["auth"])

FormText = Annotated[str | None, Form(max_length=512)]


async def _throttle_login(services: GatewayServices, who: str) -> None:
    config = services.config
    wait = await services.limiter.hit(f"login:{who}", config.login_limit, config.login_window_s)
    if wait is not None:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {config.login_limit} token requests in {config.login_window_s} s",
            {"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ApiError(
            422,
            "missing_field",
            f"{name}: is required for this grant type",
            {"field": name, "reason": "missing_field"},
        )
    return value


async def _login(services: GatewayServices, user: User) -> TokenOut:
    family = uuid.uuid4().hex
    refresh, refresh_claims = services.tokens.refresh(user.username, family)
    await services.revocations.start_family(
        family, refresh_claims.jti, services.tokens.config.refresh_ttl_s
    )
    access, _ = services.tokens.access(user, family)
    return TokenOut(
        access_token=access,
        expires_in=services.tokens.config.access_ttl_s,
        refresh_token=refresh,
    )


@router.post(
    "/token",
    response_model=TokenOut,
    responses=documented(401, 413, 422, 429, 503),
    summary="Get an access token",
)
async def token(
    services: Services,
    response: Response,
    grant_type: Annotated[Literal["password", "client_credentials", "refresh_token"], Form()],
    username: FormText = None,
    password: FormText = None,
    client_id: FormText = None,
    client_secret: FormText = None,
    refresh_token: Annotated[str | None, Form(max_length=4096)] = None,
    scope: FormText = None,
) -> TokenOut:
    """OAuth2 token endpoint (form-encoded). ``password``: a user's login, answered with an
    access token and a refresh token. ``client_credentials``: an API key (``client_id`` is
    its id, ``client_secret`` its secret), answered with an access token only.
    ``refresh_token``: a new pair; the old refresh token is spent, and presenting a spent one
    again revokes the whole login."""
    response.headers["Cache-Control"] = "no-store"
    tokens = services.tokens
    if grant_type == "password":
        name = _required(username, "username")
        secret = _required(password, "password")
        await _throttle_login(services, name)
        user = await services.users.authenticate(name, secret)
        if user is None:
            raise unauthorized("invalid_credentials", "wrong username or password")
        return await _login(services, user)
    if grant_type == "client_credentials":
        key_id = _required(client_id, "client_id")
        secret = _required(client_secret, "client_secret")
        await _throttle_login(services, key_id)
        user = await services.users.authenticate_api_key(key_id, secret)
        if user is None:
            raise unauthorized("invalid_credentials", "unknown client or wrong secret")
        access, _ = tokens.access(user, None)
        return TokenOut(access_token=access, expires_in=tokens.config.access_ttl_s)
    presented = tokens.decode_refresh(_required(refresh_token, "refresh_token"))
    await _throttle_login(services, presented.username)
    new_refresh, new_claims = tokens.refresh(presented.username, presented.family)
    rotated = await services.revocations.rotate(
        presented.family, presented.jti, new_claims.jti, tokens.config.refresh_ttl_s
    )
    if rotated == "reused":
        raise unauthorized(
            "refresh_token_reused", "this refresh token was already used: the login is revoked"
        )
    if rotated == "unknown":
        raise unauthorized("invalid_grant", "the refresh token was revoked or has expired")
    user = await services.users.get(presented.username)
    if user is None or user.disabled:
        await services.revocations.revoke_family(presented.family, tokens.config.refresh_ttl_s)
        raise unauthorized("invalid_grant", "the user is disabled")
    access, _ = tokens.access(user, presented.family)
    return TokenOut(
        access_token=access, expires_in=tokens.config.access_ttl_s, refresh_token=new_refresh
    )


@router.post(
    "/logout",
    status_code=204,
    responses=documented(401, 429, 503),
    summary="Revoke this access token and its login",
)
async def logout(services: Services, principal: CurrentPrincipal) -> Response:
    claims = principal.claims
    ttl = max(1, claims.expires_at - int(time.time()))
    await services.revocations.revoke_token(claims.jti, ttl)
    if claims.family is not None:
        await services.revocations.revoke_family(
            claims.family, services.tokens.config.refresh_ttl_s
        )
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses=documented(401, 429, 503))
async def me(principal: CurrentPrincipal) -> MeOut:
    """Who this token belongs to."""
    user = principal.user
    return MeOut(username=user.username, role=user.role.value, accounts=sorted(user.accounts))

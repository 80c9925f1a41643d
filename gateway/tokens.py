"""Short-lived JWT access tokens and rotating refresh tokens, signed with the secret key.

An access token carries who the caller is (``sub``), its role and accounts, its own id
(``jti``) and, when it came from a login, the id of its refresh-token family (``fam``), so
that revoking the family also cuts the access tokens issued from it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.errors import ApiError, unauthorized
from gateway.ports import Role, User

ALGORITHM = "HS256"
ISSUER = "tradecore"
AUDIENCE = "tradecore-api"


@dataclass(frozen=True, slots=True)
class TokenConfig:
    secret: str
    access_ttl_s: int = 15 * 60
    refresh_ttl_s: int = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user: User
    jti: str
    family: str | None
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    username: str
    jti: str
    family: str
    expires_at: int


VERIFIED_CACHE_SIZE = 10_000


class TokenIssuer:
    def __init__(self, config: TokenConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        # Access tokens whose signature and claims were checked, by their text. A signature
        # checked once stays good (the key does not change), so a hit only re-checks expiry,
        # the one thing that changes with time; revocation is not cached here (callers ask
        # the revocation store every time). Saves the HMAC, base64 and JSON of PyJWT per
        # request. Bounded: emptied when full.
        self._verified: dict[str, AccessClaims] = {}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.config.secret, algorithm=ALGORITHM)

    def access(self, user: User, family: str | None) -> tuple[str, AccessClaims]:
        now = int(self.clock())
        claims = AccessClaims(
            user=user,
            jti=uuid.uuid4().hex,
            family=family,
            issued_at=now,
            expires_at=now + self.config.access_ttl_s,
        )
        payload: dict[str, Any] = {
            "typ": "access",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user.username,
            "role": user.role.value,
            "acc": sorted(user.accounts),
            "jti": claims.jti,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
        }
        if family is not None:
            payload["fam"] = family
        return self._sign(payload), claims

    def refresh(self, username: str, family: str) -> tuple[str, RefreshClaims]:
        now = int(self.clock())
        claims = RefreshClaims(
            username=username,
            jti=uuid.uuid4().hex,
            family=family,
            expires_at=now + self.config.refresh_ttl_s,
        )
        payload = {
            "typ": "refresh",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": username,
            "fam": family,
            "jti": claims.jti,
            "iat": now,
            "exp": claims.expires_at,
        }
        return self._sign(payload), claims

    def _decode(self, token: str, kind: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.config.secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token_expired", f"the {kind} token has expired") from None
        except jwt.InvalidTokenError:
            raise unauthorized("invalid_token", f"not a valid {kind} token") from None
        if claims.get("typ") != kind:
            raise unauthorized("invalid_token", f"not a valid {kind} token")
        return claims

    def decode_access(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        # PyJWT's rule, with its clock: expired once `exp <= now`.
        if cached is not None and cached.expires_at > time.time():
            return cached
        verified = self._decode_access(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = verified
        return verified

    def _decode_access(self, token: str) -> AccessClaims:
        claims = self._decode(token, "access")
        try:
            user = User(
                username=str(claims["sub"]),
                role=Role(claims["role"]),
                accounts=frozenset(str(a) for a in claims.get("acc", [])),
            )
            family = claims.get("fam")
            return AccessClaims(
                user=user,
                jti=str(claims["jti"]),
                family=None if family is None else str(family),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
            )
        except (KeyError, ValueError, TypeError):
            raise unauthorized("invalid_token", "not a valid access token") from None

    def decode_refresh(self, token: str) -> RefreshClaims:
        try:
            claims = self._decode(token, "refresh")
        except ApiError as exc:
            raise unauthorized("invalid_grant", exc.message) from None
        if not isinstance(claims.get("fam"), str):
            raise unauthorized("invalid_grant", "not a valid refresh token")
        return RefreshClaims(
            username=str(claims["sub"]),
            jti=str(claims["jti"]),
            family=claims["fam"],
            expires_at=int(claims["exp"]),
        )

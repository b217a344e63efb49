"""Signed tokens (JWT): the checks, as a pure function of the token and the settings.

A token names its user in `sub` and must carry `exp`. Only the HMAC algorithms
configured in PUSH_JWT_ALGORITHMS are accepted, all keyed by PUSH_JWT_SECRET:
`alg: none` and RSA/HMAC confusion are refused by PyJWT's allow-list. Each
failure names the check that failed, so an integrator can tell an expired
token from a wrong secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from push.keys import InvalidUserId, validate_user_id


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a stream is for, and for how long (a token's claims, or demo mode's user_id)."""

    user_id: str
    #: When the credential ends: the token's exp (seconds since the epoch). None: never.
    expires_at: float | None = None
    #: When the token was issued (its iat; 0 without one, which counts as before any
    #: revocation). None: not a token (demo mode's bare user_id), which revocation
    #: cannot refuse.
    issued_at: float | None = None


class TokenRejected(Exception):
    """The token failed one check; `code` is stable, `detail` is for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret: str
    algorithms: tuple[str, ...]
    audience: str | None
    issuer: str | None
    leeway_s: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TokenSettings | None:
        """None when no secret is configured (demo mode without tokens)."""
        if not config["PUSH_JWT_SECRET"]:
            return None
        return cls(
            secret=config["PUSH_JWT_SECRET"],
            algorithms=tuple(config["PUSH_JWT_ALGORITHMS"]),
            audience=config["PUSH_JWT_AUDIENCE"],
            issuer=config["PUSH_JWT_ISSUER"],
            leeway_s=config["PUSH_JWT_LEEWAY_S"],
        )


#: PyJWT's exceptions, most specific first, and the check each one means.
_FAILURES: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "token_expired", "the token has expired (exp)"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "the token is not valid yet (nbf/iat)"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token's aud is not this service's"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token's iss is not the configured issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim", "the token lacks a required claim"),
    (jwt.exceptions.InvalidSubjectError, "bad_sub", "the token's sub is not a string"),
    (jwt.InvalidAlgorithmError, "algorithm_not_allowed", "the token's alg is not accepted"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature does not verify"),
    (jwt.DecodeError, "malformed_token", "the token is not a well-formed JWT"),
    (jwt.InvalidTokenError, "invalid_token", "the token was refused"),
]


def verify_token(token: str, settings: TokenSettings) -> Identity:
    """Who a valid token names and until when, or TokenRejected saying which check failed."""
    try:
        claims = jwt.decode(
            token,
            settings.secret,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            options={"require": ["exp", "sub"], "verify_aud": settings.audience is not None},
        )
    except jwt.InvalidTokenError as error:
        for kind, code, detail in _FAILURES:
            if isinstance(error, kind):
                if kind is jwt.MissingRequiredClaimError:
                    detail = f"the token lacks the {error.claim!r} claim"
                raise TokenRejected(code, detail) from None
        raise  # pragma: no cover - _FAILURES ends with the base class
    try:
        user_id = validate_user_id(claims["sub"])
    except InvalidUserId as error:
        raise TokenRejected("bad_sub", f"the token's sub is not a user id: {error}") from None
    issued_at = claims.get("iat")
    return Identity(
        user_id,
        expires_at=float(claims["exp"]),
        issued_at=float(issued_at) if isinstance(issued_at, int | float) else 0.0,
    )

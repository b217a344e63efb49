"""Signed tokens (JWT): the checks, as a pure function of the token and the settings.

A token names its user in `sub` and must carry `exp`. Only the HMAC algorithms
configured in PUSH_JWT_ALGORITHMS are accepted, all keyed by PUSH_JWT_SECRET:
`alg: none` and RSA/HMAC confusion are refused by PyJWT's allow-list. Each
failure names the check that failed, so an integrator can tell an expired
token from a wrong secret.

A token is tied to this service and to a bounded life. Its `aud`, when present,
must name this service (PUSH_JWT_AUDIENCE, else `push`); a list of audiences
passes when it holds ours; a token without `aud` passes only while
PUSH_JWT_AUDIENCE is unset. A token with more than PUSH_JWT_MAX_AGE_S left to
live is refused, not cut short: a stolen ten-year token is then worth nothing
(rather than a day per reconnection, forever), and a backend minting such tokens
finds out on its first one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from push.model.keys import InvalidUserId, validate_user_id
from push.model.settings import IMPLICIT_JWT_AUDIENCE, JWT_MAX_AGE_CLOCK_SKEW_S


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
    #: This service's name in `aud`: PUSH_JWT_AUDIENCE, else IMPLICIT_JWT_AUDIENCE.
    audience: str
    #: Whether a token must carry `aud` (only when PUSH_JWT_AUDIENCE is set).
    audience_required: bool
    issuer: str | None
    leeway_s: int
    #: The longest life a token may be minted with (PUSH_JWT_MAX_AGE_S).
    max_age_s: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TokenSettings | None:
        """None when no secret is configured (demo mode without tokens)."""
        if not config["PUSH_JWT_SECRET"]:
            return None
        return cls(
            secret=config["PUSH_JWT_SECRET"],
            algorithms=tuple(config["PUSH_JWT_ALGORITHMS"]),
            audience=config["PUSH_JWT_AUDIENCE"] or IMPLICIT_JWT_AUDIENCE,
            audience_required=config["PUSH_JWT_AUDIENCE"] is not None,
            issuer=config["PUSH_JWT_ISSUER"],
            leeway_s=config["PUSH_JWT_LEEWAY_S"],
            max_age_s=config["PUSH_JWT_MAX_AGE_S"],
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
            audience=settings.audience if settings.audience_required else None,
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            options={"require": ["exp", "sub"], "verify_aud": settings.audience_required},
        )
    except jwt.InvalidTokenError as error:
        for kind, code, detail in _FAILURES:
            if isinstance(error, kind):
                if kind is jwt.MissingRequiredClaimError:
                    detail = f"the token lacks the {error.claim!r} claim"
                raise TokenRejected(code, detail) from None
        raise  # pragma: no cover - _FAILURES ends with the base class
    if not settings.audience_required and not _names_us(claims.get("aud"), settings.audience):
        raise TokenRejected(
            "wrong_audience", f"the token's aud does not name this service ({settings.audience!r})"
        )
    try:
        user_id = validate_user_id(claims["sub"])
    except InvalidUserId as error:
        raise TokenRejected("bad_sub", f"the token's sub is not a user id: {error}") from None
    issued_at = claims.get("iat")
    _check_lifetime(claims, settings, time.time())
    return Identity(
        user_id,
        expires_at=float(claims["exp"]),
        issued_at=float(issued_at) if isinstance(issued_at, int | float) else 0.0,
    )


def _names_us(aud: object, ours: str) -> bool:
    """An absent `aud` (PUSH_JWT_AUDIENCE unset), ours, or a list of audiences holding ours."""
    if aud is None:
        return True
    if isinstance(aud, str):
        return aud == ours
    return isinstance(aud, list) and ours in aud


def _check_lifetime(claims: Mapping[str, Any], settings: TokenSettings, now: float) -> None:
    """Refuse a token with more than max_age_s left to live (and the clock skew allowed).

    What is left, not exp - iat: that is what a stolen token is worth, and a token that
    lived long but ends soon is worth no more than a fresh short one."""
    left = float(claims["exp"]) - now
    if left > settings.max_age_s + max(settings.leeway_s, JWT_MAX_AGE_CLOCK_SKEW_S):
        raise TokenRejected(
            "token_lifetime_too_long",
            f"the token has {left:.0f} s left to live, more than PUSH_JWT_MAX_AGE_S "
            f"({settings.max_age_s} s): mint shorter-lived tokens",
        )

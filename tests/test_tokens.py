"""Tokens tied to this service (`aud`) and to a bounded life (PUSH_JWT_MAX_AGE_S): the
checks as a pure function, the settings, and the answer a stream gets."""

from __future__ import annotations

import time

import jwt
import pytest

from push.identity.tokens import Identity, TokenRejected, TokenSettings, verify_token
from push.model.settings import ConfigError, load_config
from push.service import create_app

SECRET = "tests-only-secret-0123456789abcdef"
DAY = 24 * 3600


def settings(**environ: str) -> TokenSettings:
    tokens = TokenSettings.from_config(load_config({"PUSH_JWT_SECRET": SECRET, **environ}))
    assert tokens is not None
    return tokens


def mint(lifetime_s: float = 3600, **claims: object) -> str:
    """A token for alice living `lifetime_s`; keyword claims override or (None) remove.

    Tables mint when the module is collected: an hour outlives the whole suite."""
    payload: dict[str, object] = {"sub": "alice", "exp": int(time.time() + lifetime_s)}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


def refusal(token: str, tokens: TokenSettings) -> str:
    with pytest.raises(TokenRejected) as refused:
        verify_token(token, tokens)
    assert refused.value.detail
    return refused.value.code


# --- aud ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud", ["billing-api", "", ["billing-api"], ["billing-api", "other"], 42, {"aud": "push"}]
)
def test_a_token_for_another_audience_is_refused_with_no_audience_configured(aud):
    assert refusal(mint(aud=aud), settings()) == "wrong_audience"


@pytest.mark.parametrize("aud", [None, "push", ["billing-api", "push"], ["push"]])
def test_a_token_without_aud_or_naming_push_passes_with_no_audience_configured(aud):
    assert verify_token(mint(aud=aud), settings()).user_id == "alice"


def test_with_an_audience_configured_a_token_must_name_it():
    tokens = settings(PUSH_JWT_AUDIENCE="shop-push")
    assert verify_token(mint(aud="shop-push"), tokens).user_id == "alice"
    assert verify_token(mint(aud=["billing-api", "shop-push"]), tokens).user_id == "alice"
    assert refusal(mint(aud=None), tokens) == "missing_claim"
    assert refusal(mint(aud="push"), tokens) == "wrong_audience"
    assert refusal(mint(aud=["billing-api"]), tokens) == "wrong_audience"


# --- lifetime ---------------------------------------------------------------------------


def test_a_ten_year_token_is_refused_as_living_too_long():
    assert refusal(mint(lifetime_s=10 * 365 * DAY), settings()) == "token_lifetime_too_long"


def test_what_counts_is_the_life_left_not_the_life_since_iat():
    """A long-lived token in its last minutes is worth no more than a fresh short one."""
    now = time.time()
    old = mint(iat=int(now - 2 * DAY), exp=int(now + 600))
    assert verify_token(old, settings()).user_id == "alice"


def test_a_token_within_the_max_age_passes_with_the_clock_skew_allowed():
    now = int(time.time())
    identity = verify_token(mint(iat=now, exp=now + DAY), settings())
    assert identity == Identity("alice", expires_at=now + DAY, issued_at=now)
    assert verify_token(mint(lifetime_s=DAY - 60), settings()).user_id == "alice"
    tokens = settings(PUSH_JWT_MAX_AGE_S="600", PUSH_JWT_LEEWAY_S="5")
    assert verify_token(mint(exp=now + 600), tokens).user_id == "alice"
    assert verify_token(mint(exp=now + 603), tokens).user_id == "alice"
    assert refusal(mint(exp=now + 1000), tokens) == "token_lifetime_too_long"


def test_a_days_token_from_an_issuer_whose_clock_runs_minutes_ahead_passes():
    """`expiresIn: "1d"` on a host four minutes ahead is still a day's token; ten minutes
    past the day is not."""
    assert verify_token(mint(lifetime_s=DAY + 240), settings()).user_id == "alice"
    assert refusal(mint(lifetime_s=DAY + 600), settings()) == "token_lifetime_too_long"


# --- settings ---------------------------------------------------------------------------


def test_max_age_defaults_to_a_day_and_audience_to_push_without_requiring_it():
    tokens = settings()
    assert (tokens.max_age_s, tokens.audience, tokens.audience_required) == (DAY, "push", False)


@pytest.mark.parametrize("raw", ["soon", "0", "59", "1.5", str(367 * DAY)])
def test_a_wrong_max_age_stops_start_up_and_is_named(raw):
    with pytest.raises(ConfigError, match="PUSH_JWT_MAX_AGE_S"):
        load_config({"PUSH_JWT_SECRET": SECRET, "PUSH_JWT_MAX_AGE_S": raw})


# --- the answer a stream gets -----------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "error"),
    [
        (mint(aud="billing-api"), "wrong_audience"),
        (mint(lifetime_s=10 * 365 * DAY), "token_lifetime_too_long"),
    ],
    ids=["another audience", "ten-year exp"],
)
def test_a_stream_with_a_token_for_another_service_or_for_years_is_refused(token, error):
    """With PUSH_JWT_AUDIENCE unset; refused before Redis is asked anything (this app's
    Redis URL leads nowhere)."""
    client = create_app({"PUSH_JWT_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:9/0"})
    response = client.test_client().get("/stream", query_string={"token": token})
    assert response.status_code == 401
    assert response.get_json()["error"] == error
    assert response.headers["WWW-Authenticate"].startswith("Bearer")

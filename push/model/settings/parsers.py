"""The parsers of the settings' values: each takes (variable, raw text) and returns the
value or raises ConfigError naming the variable, so a wrong value stops start-up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from push.model.redis_urls import parse_sentinel_url
from push.model.settings.defaults import ALLOWED_JWT_ALGORITHMS, MIN_API_KEY_CHARS

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a wrong value; the message names the variable."""


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def number(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
        return value

    return parse


def mailbox_template(name: str, raw: str) -> str:
    if raw.count("{user_id}") != 1:
        raise ConfigError(f"{name} must contain {{user_id}} exactly once, got {raw!r}")
    if "{" in raw.replace("{user_id}", "") or "}" in raw.replace("{user_id}", ""):
        raise ConfigError(f"{name} may hold no braces other than {{user_id}}, got {raw!r}")
    return raw


def text(name: str, raw: str) -> str:
    return raw


def hook_url(name: str, raw: str) -> str | None:
    """An http(s) URL with a host and a valid port (if any), no user:password and no
    fragment (http.client would send neither), or None when unset."""
    if not raw:
        return None
    wrong = f"{name} must be an http:// or https:// URL with a host, got {raw!r}"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError as error:
        raise ConfigError(f"{wrong}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(wrong)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{wrong}: user:password in the URL is not sent; leave it out")
    if parts.fragment or raw.endswith("#"):
        raise ConfigError(f"{wrong}: a #fragment is not sent; leave it out")
    return raw


def optional_text(name: str, raw: str) -> str | None:
    return raw.strip() or None


def choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def api_keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    short = [key for key in keys if len(key) < MIN_API_KEY_CHARS]
    if short:
        raise ConfigError(f"{name}: each key needs at least {MIN_API_KEY_CHARS} characters")
    return keys


def algorithms(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    wrong = [algorithm for algorithm in names if algorithm not in ALLOWED_JWT_ALGORITHMS]
    if not names or wrong:
        raise ConfigError(
            f"{name} is a comma list of {', '.join(sorted(ALLOWED_JWT_ALGORITHMS))}, got {raw!r}"
        )
    return names


def origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ConfigError(
                f"{name} is a comma list of origins like https://app.example.com, got {origin!r}"
            )
    return origins


def redis_url(name: str, raw: str) -> str:
    if raw.startswith("redis+sentinel://"):
        try:
            parse_sentinel_url(raw)
        except ValueError as error:
            raise ConfigError(f"{name}: {error}, got {raw!r}") from None
        return raw
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{name} must start with redis://, rediss://, unix:// or redis+sentinel://, got {raw!r}"
        )
    return raw

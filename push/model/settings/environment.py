"""Reading the environment: which variable holds which setting, parsed by which parser,
defaulting to what. Configuration flows one way: environment -> `parse_environ` ->
`create_app` -> `app.config` -> the typed `Settings` (push/model/settings/typed.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from push.model.settings.consistency import check_consistency
from push.model.settings.defaults import (
    DEFAULT_API_RATE,
    DEFAULT_AUTH_CACHE_S,
    DEFAULT_AUTH_TIMEOUT_S,
    DEFAULT_BLOCK_S,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_DEAD_LETTER_TTL_S,
    DEFAULT_DRAIN_BATCH,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_HISTORY_MAX,
    DEFAULT_HISTORY_TTL_S,
    DEFAULT_IDEMPOTENCY_MAX_BYTES,
    DEFAULT_JWT_ALGORITHMS,
    DEFAULT_JWT_LEEWAY_S,
    DEFAULT_JWT_MAX_AGE_S,
    DEFAULT_MAILBOX_KEY,
    DEFAULT_MAILBOX_MAX,
    DEFAULT_MAILBOX_SWEEP_S,
    DEFAULT_MAILBOX_TTL_S,
    DEFAULT_MAILBOX_WATCH,
    DEFAULT_MAX_CONNECTIONS_PER_USER,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_OUTBOX_MAX,
    DEFAULT_PRESENCE_LEASE_S,
    DEFAULT_RECONNECT_SPREAD_S,
    DEFAULT_REDIS_POOL_SIZE,
    DEFAULT_REDIS_URL,
    DEFAULT_RETRY_MS,
    DEFAULT_REVOCATION_TTL_S,
    DEFAULT_TICKET_TTL_S,
    DEFAULT_TOKEN_COOKIE,
    DEFAULT_WS_PING_S,
    MAILBOX_WATCH_MODES,
)
from push.model.settings.parsers import (
    algorithms,
    api_keys,
    boolean,
    choice,
    hook_url,
    mailbox_template,
    number,
    optional_text,
    origins,
    redis_url,
    text,
)

#: environment variable -> (app.config key, parser, default)
SETTINGS: dict[str, tuple[str, Callable[[str, str], Any], Any]] = {
    "REDIS_URL": ("REDIS_URL", redis_url, DEFAULT_REDIS_URL),
    "PUSH_REDIS_CLUSTER": ("PUSH_REDIS_CLUSTER", boolean, False),
    "PUSH_DEMO": ("PUSH_DEMO", boolean, False),
    "PUSH_DEMO_FORCE": ("PUSH_DEMO_FORCE", boolean, False),
    "PUSH_MAILBOX_KEY": ("PUSH_MAILBOX_KEY", mailbox_template, DEFAULT_MAILBOX_KEY),
    "PUSH_HEARTBEAT_S": ("PUSH_HEARTBEAT_S", number(float, 0.05, 3600), DEFAULT_HEARTBEAT_S),
    "PUSH_HISTORY_MAX": ("PUSH_HISTORY_MAX", number(int, 10, 10_000_000), DEFAULT_HISTORY_MAX),
    "PUSH_HISTORY_TTL_S": (
        "PUSH_HISTORY_TTL_S",
        number(int, 60, 10 * 365 * 86400),
        DEFAULT_HISTORY_TTL_S,
    ),
    "PUSH_MAX_MESSAGE_BYTES": (
        "PUSH_MAX_MESSAGE_BYTES",
        number(int, 16, 64 * 1024 * 1024),
        DEFAULT_MAX_MESSAGE_BYTES,
    ),
    "PUSH_MAILBOX_MAX": ("PUSH_MAILBOX_MAX", number(int, 1, 100_000_000), DEFAULT_MAILBOX_MAX),
    "PUSH_MAILBOX_TTL_S": (
        "PUSH_MAILBOX_TTL_S",
        number(int, 1, 10 * 365 * 86400),
        DEFAULT_MAILBOX_TTL_S,
    ),
    "PUSH_MAILBOX_SWEEP_S": (
        "PUSH_MAILBOX_SWEEP_S",
        number(float, 0.05, 86400),
        DEFAULT_MAILBOX_SWEEP_S,
    ),
    "PUSH_DEAD_LETTER_TTL_S": (
        "PUSH_DEAD_LETTER_TTL_S",
        number(int, 1, 10 * 365 * 86400),
        DEFAULT_DEAD_LETTER_TTL_S,
    ),
    "PUSH_IDEMPOTENCY_MAX_BYTES": (
        "PUSH_IDEMPOTENCY_MAX_BYTES",
        number(int, 1024, 1 << 40),
        DEFAULT_IDEMPOTENCY_MAX_BYTES,
    ),
    "PUSH_BODY_TIMEOUT_S": (
        "PUSH_BODY_TIMEOUT_S",
        number(float, 0.1, 600),
        DEFAULT_BODY_TIMEOUT_S,
    ),
    "PUSH_OUTBOX_MAX": ("PUSH_OUTBOX_MAX", number(int, 1, 1_000_000), DEFAULT_OUTBOX_MAX),
    "PUSH_RETRY_MS": ("PUSH_RETRY_MS", number(int, 100, 3_600_000), DEFAULT_RETRY_MS),
    "PUSH_WS_PING_S": ("PUSH_WS_PING_S", number(float, 0.5, 3600), DEFAULT_WS_PING_S),
    "PUSH_BLOCK_S": ("PUSH_BLOCK_S", number(float, 0.1, 300), DEFAULT_BLOCK_S),
    "PUSH_REDIS_POOL_SIZE": (
        "PUSH_REDIS_POOL_SIZE",
        number(int, 2, 10_000),
        DEFAULT_REDIS_POOL_SIZE,
    ),
    "PUSH_DRAIN_BATCH": ("PUSH_DRAIN_BATCH", number(int, 1, 10_000), DEFAULT_DRAIN_BATCH),
    "PUSH_MAILBOX_WATCH": (
        "PUSH_MAILBOX_WATCH",
        choice(*MAILBOX_WATCH_MODES),
        DEFAULT_MAILBOX_WATCH,
    ),
    "PUSH_JWT_SECRET": ("PUSH_JWT_SECRET", optional_text, None),
    "PUSH_JWT_ALGORITHMS": ("PUSH_JWT_ALGORITHMS", algorithms, DEFAULT_JWT_ALGORITHMS),
    "PUSH_JWT_AUDIENCE": ("PUSH_JWT_AUDIENCE", optional_text, None),
    "PUSH_JWT_ISSUER": ("PUSH_JWT_ISSUER", optional_text, None),
    "PUSH_JWT_LEEWAY_S": ("PUSH_JWT_LEEWAY_S", number(int, 0, 300), DEFAULT_JWT_LEEWAY_S),
    "PUSH_JWT_MAX_AGE_S": (
        "PUSH_JWT_MAX_AGE_S",
        number(int, 60, 366 * 86400),
        DEFAULT_JWT_MAX_AGE_S,
    ),
    "PUSH_TOKEN_COOKIE": ("PUSH_TOKEN_COOKIE", text, DEFAULT_TOKEN_COOKIE),
    "PUSH_AUTH_URL": ("PUSH_AUTH_URL", hook_url, None),
    "PUSH_AUTH_CACHE_S": ("PUSH_AUTH_CACHE_S", number(float, 0, 3600), DEFAULT_AUTH_CACHE_S),
    "PUSH_AUTH_TIMEOUT_S": (
        "PUSH_AUTH_TIMEOUT_S",
        number(float, 0.05, 30),
        DEFAULT_AUTH_TIMEOUT_S,
    ),
    "PUSH_TICKET_TTL_S": ("PUSH_TICKET_TTL_S", number(int, 1, 3600), DEFAULT_TICKET_TTL_S),
    "PUSH_ALLOWED_ORIGINS": ("PUSH_ALLOWED_ORIGINS", origins, ()),
    "PUSH_MAX_CONNECTIONS_PER_USER": (
        "PUSH_MAX_CONNECTIONS_PER_USER",
        number(int, 1, 100_000),
        DEFAULT_MAX_CONNECTIONS_PER_USER,
    ),
    "PUSH_API_KEY": ("PUSH_API_KEY", api_keys, ()),
    "PUSH_API_RATE": ("PUSH_API_RATE", number(int, 0, 1_000_000), DEFAULT_API_RATE),
    "PUSH_REVOCATION_TTL_S": (
        "PUSH_REVOCATION_TTL_S",
        number(int, 60, 10 * 365 * 86400),
        DEFAULT_REVOCATION_TTL_S,
    ),
    "PUSH_METRICS_TOKEN": ("PUSH_METRICS_TOKEN", optional_text, None),
    "PUSH_LOG_FORMAT": ("PUSH_LOG_FORMAT", choice("text", "json"), "text"),
    "PUSH_RECONNECT_SPREAD_S": (
        "PUSH_RECONNECT_SPREAD_S",
        number(float, 0, 600),
        DEFAULT_RECONNECT_SPREAD_S,
    ),
    "PUSH_TRUSTED_PROXIES": ("PUSH_TRUSTED_PROXIES", number(int, 0, 10), 0),
    "PUSH_PRESENCE_LEASE_S": (
        "PUSH_PRESENCE_LEASE_S",
        number(float, 1, 3600),
        DEFAULT_PRESENCE_LEASE_S,
    ),
}


def parse_environ(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting from `environ` (default: os.environ), each value checked alone."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for variable, (key, parse, default) in SETTINGS.items():
        raw = environ.get(variable)
        config[key] = default if raw is None else parse(variable, raw)
    return config


def load_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting from `environ`, checked alone and together."""
    config = parse_environ(environ)
    check_consistency(config)
    return config

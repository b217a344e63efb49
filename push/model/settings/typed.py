"""The settings as typed objects, made once by `create_app` from `app.config`: `Settings`
(every setting, for the views and the CLI) and `DeliverySettings` (what the delivery path
reads on every message). Code reads `settings.mailbox_key`, not `config["PUSH_MAILBOX_KEY"]`:
a misspelt name fails at once, and the type says what the value is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from push.model.settings.defaults import (
    DEFAULT_DEAD_LETTER_TTL_S,
    DEFAULT_MAILBOX_MAX,
    DEFAULT_MAILBOX_TTL_S,
    DEFAULT_MAILBOX_WATCH,
)


def config_key(name: str) -> str:
    """The app.config key, which is also the environment variable, of a `Settings` field:
    `mailbox_key` is PUSH_MAILBOX_KEY, `redis_url` is REDIS_URL."""
    return "REDIS_URL" if name == "redis_url" else f"PUSH_{name.upper()}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, one field each, named after its variable without `PUSH_` (the README's
    Configuration section says what each does; push/model/settings/defaults.py why its
    default is what it is). Secrets are left out of the repr."""

    # Redis
    redis_url: str
    redis_cluster: bool
    redis_pool_size: int
    block_s: float
    # Demo mode
    demo: bool
    demo_force: bool
    # Mailboxes, history and delivery
    mailbox_key: str
    mailbox_max: int
    mailbox_ttl_s: int
    mailbox_sweep_s: float
    mailbox_watch: str
    history_max: int
    history_ttl_s: int
    max_message_bytes: int
    dead_letter_ttl_s: int
    drain_batch: int
    outbox_max: int
    heartbeat_s: float
    retry_ms: int
    ws_ping_s: float
    reconnect_spread_s: float
    presence_lease_s: float
    max_connections_per_user: int
    # Identity
    jwt_secret: str | None = field(repr=False)
    jwt_algorithms: tuple[str, ...]
    jwt_audience: str | None
    jwt_issuer: str | None
    jwt_leeway_s: int
    jwt_max_age_s: int
    token_cookie: str
    ticket_ttl_s: int
    auth_url: str | None
    auth_cache_s: float
    auth_timeout_s: float
    revocation_ttl_s: int
    # The HTTP edge
    allowed_origins: tuple[str, ...]
    api_key: tuple[str, ...] = field(repr=False)
    api_rate: int
    idempotency_max_bytes: int
    body_timeout_s: float
    metrics_token: str | None = field(repr=False)
    trusted_proxies: int
    log_format: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """The settings in `config` (app.config: parsed and checked, push/model/settings/)."""
        return cls(**{each.name: config[config_key(each.name)] for each in fields(cls)})


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """The settings the delivery path reads on every message, taken once from app.config."""

    mailbox_template: str
    heartbeat_s: float
    history_max: int
    history_ttl_s: int
    max_message_bytes: int
    outbox_max: int
    drain_batch: int
    retry_ms: int
    reconnect_spread_s: float
    #: auto, notify or block: see DEFAULT_MAILBOX_WATCH.
    mailbox_watch: str = DEFAULT_MAILBOX_WATCH
    mailbox_max: int = DEFAULT_MAILBOX_MAX
    mailbox_ttl_s: int = DEFAULT_MAILBOX_TTL_S
    dead_letter_ttl_s: int = DEFAULT_DEAD_LETTER_TTL_S

    @property
    def window(self) -> int:
        """Undelivered entries the history may hold: half its cap, so trimming drops only
        what was delivered."""
        return self.history_max // 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DeliverySettings:
        return cls(
            mailbox_template=config["PUSH_MAILBOX_KEY"],
            heartbeat_s=config["PUSH_HEARTBEAT_S"],
            history_max=config["PUSH_HISTORY_MAX"],
            history_ttl_s=config["PUSH_HISTORY_TTL_S"],
            max_message_bytes=config["PUSH_MAX_MESSAGE_BYTES"],
            outbox_max=config["PUSH_OUTBOX_MAX"],
            drain_batch=config["PUSH_DRAIN_BATCH"],
            retry_ms=config["PUSH_RETRY_MS"],
            reconnect_spread_s=config["PUSH_RECONNECT_SPREAD_S"],
            mailbox_watch=config["PUSH_MAILBOX_WATCH"],
            mailbox_max=config["PUSH_MAILBOX_MAX"],
            mailbox_ttl_s=config["PUSH_MAILBOX_TTL_S"],
            dead_letter_ttl_s=config["PUSH_DEAD_LETTER_TTL_S"],
        )

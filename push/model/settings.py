"""Settings: every default with its reason, read once from the environment.

Configuration flows one way: environment -> `load_config` -> `create_app` ->
`app.config`. A wrong value raises `ConfigError` naming the variable, so the
service refuses to start instead of misbehaving later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from push.model.redis_urls import parse_cluster_seeds, parse_sentinel_url

#: Where the mailboxes live. Unset in development means "start a private Redis" (app.py).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The producers' contract: LPUSH to this key. `{user_id}` is replaced by the user id.
DEFAULT_MAILBOX_KEY = "user_{user_id}_messages"
#: Proxies and load balancers commonly cut idle connections after 30-60 s; 15 s stays under.
DEFAULT_HEARTBEAT_S = 15.0
#: Entries kept per user for resume; about 1000 short messages cost ~100 KB in Redis.
DEFAULT_HISTORY_MAX = 1000
#: A week: a user who comes back after a weekend can still resume.
DEFAULT_HISTORY_TTL_S = 7 * 24 * 3600
#: Larger payloads are a producer bug; they go to the dead-letter list, not to browsers.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
#: Messages one mailbox holds before the oldest go: a user offline for weeks under a
#: chatty producer keeps a long backlog (~1 MB of short messages), not an unbounded one.
DEFAULT_MAILBOX_MAX = 10_000
#: A mailbox nobody wrote to for 30 days is dropped: longer than any absence whose
#: backlog is still worth showing, and as long as a revocation is remembered.
DEFAULT_MAILBOX_TTL_S = 30 * 24 * 3600
#: How often one worker of the fleet sweeps a share of the mailboxes (cap and TTL for raw
#: LPUSH producers): an offline user's mailbox is held to them within a few sweeps.
DEFAULT_MAILBOX_SWEEP_S = 60.0
#: Redis's own expiry on a mailbox comes this long after its TTL: the sweep (which counts
#: and logs) drops a mailbox at its TTL; Redis only catches one no service swept for a day.
MAILBOX_EXPIRY_MARGIN_S = 86400
#: A dead letter is for a person to look at what a producer got wrong: a week is enough.
DEFAULT_DEAD_LETTER_TTL_S = 7 * 24 * 3600
#: Bytes of a dead letter kept (a longer one is cut, its length noted): enough to see what
#: a producer sent; with the last 1000 kept, a user's dead letters stay under ~4 MB.
DEAD_LETTER_MAX_BYTES = 4096
#: Dead letters kept per user (the newest).
DEAD_LETTER_MAX_COUNT = 1000
#: Bytes of idempotency records kept per API key before the oldest go: a retry comes
#: within minutes, and 64 MiB holds hours of them even at dozens of keyed publishes a
#: second (a one-user record is ~400 bytes), while bounding each key's share of Redis.
DEFAULT_IDEMPOTENCY_MAX_BYTES = 64 * 1024 * 1024
#: Events queued for one slow connection before it is cut (it resumes by event id).
DEFAULT_OUTBOX_MAX = 1000
#: What EventSource waits before reconnecting (ms); a little jitter is added per answer.
DEFAULT_RETRY_MS = 2000
#: WebSocket ping interval; also how fast a silently dropped WebSocket is noticed.
DEFAULT_WS_PING_S = 25.0
#: How long a mover blocks on BLMOVE before it looks again (stopping does not wait for it).
DEFAULT_BLOCK_S = 20.0
#: Connections for short commands, per worker (a command holds one for a round trip);
#: blocked movers use their own. Small, so Redis holds ~ online users + 10 per worker.
DEFAULT_REDIS_POOL_SIZE = 8
#: Messages moved per Lua call: batching is what makes the mover fast.
DEFAULT_DRAIN_BATCH = 200
#: How a worker learns that a mailbox received mail. auto: the per-worker mailbox watcher
#: (a few Redis connections per worker, whatever the number of users) where Redis can
#: track keys (Redis >= 6), else a blocked connection per online user.
DEFAULT_MAILBOX_WATCH = "auto"
MAILBOX_WATCH_MODES = ("auto", "notify", "block")
#: HMAC algorithms only: every one is keyed by PUSH_JWT_SECRET, so no HS/RS confusion.
DEFAULT_JWT_ALGORITHMS = ("HS256",)
ALLOWED_JWT_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
#: HS256 keys shorter than the hash are guessable offline (RFC 7518 section 3.2).
MIN_JWT_SECRET_BYTES = 32
#: API keys are bearer secrets: long enough not to be guessed online.
MIN_API_KEY_CHARS = 16
#: Clock skew tolerated between the token's issuer and this service.
DEFAULT_JWT_LEEWAY_S = 5
#: This service's name in a token's `aud` while PUSH_JWT_AUDIENCE is unset: a token minted
#: for another service (another `aud`) never opens a stream here.
IMPLICIT_JWT_AUDIENCE = "push"
#: The longest life a token may be minted with. A day: a token minted at sign-in lasts a
#: working day, pages fetch fresh ones anyway (push.js getToken, in-band refresh), and a
#: stolen token is worth a day at most, not the years its issuer may have written.
DEFAULT_JWT_MAX_AGE_S = 24 * 3600
#: How far an issuer's clock may run ahead of ours before a token minted for exactly
#: PUSH_JWT_MAX_AGE_S counts as longer: hosts kept by NTP are within seconds, a laptop or
#: a container without it within minutes.
JWT_MAX_AGE_CLOCK_SKEW_S = 300
#: Where a page keeps its token for EventSource, which cannot set headers (HttpOnly).
DEFAULT_TOKEN_COOKIE = "push_token"
#: A ticket only has to survive the page's next request.
DEFAULT_TICKET_TTL_S = 30
#: Seconds the site's answer for one session is reused: a reconnect storm after a deploy
#: asks the site once per session, and a logout is seen by the next reconnect within this.
DEFAULT_AUTH_CACHE_S = 30.0
#: Seconds the service waits for the site's auth hook: a slow site is treated as down.
DEFAULT_AUTH_TIMEOUT_S = 1.0
#: Twenty tabs of one user is generous; more is a bug or an abuse.
DEFAULT_MAX_CONNECTIONS_PER_USER = 20
#: How long a user's revocation refuses the tokens issued before it. It must outlast the
#: longest `exp` a site mints (PUSH_JWT_MAX_AGE_S bounds only the life a token has left, so
#: a token minted for 60 days passes that check in its last day), or such a token works
#: again once the revocation is forgotten; 30 days is longer than sites let a session live.
DEFAULT_REVOCATION_TTL_S = 30 * 24 * 3600
#: Publish API calls per second per API key; 0 turns the limit off.
DEFAULT_API_RATE = 0
#: Seconds over which clients are told to come back after a restart, so they do not all
#: reconnect in the same second.
DEFAULT_RECONNECT_SPREAD_S = 5.0
#: A connection's presence lease; renewed every third of it, so a dead worker's
#: connections stop counting within this many seconds.
DEFAULT_PRESENCE_LEASE_S = 60

#: Seconds a request body may take to arrive. The largest body taken (a publish of about
#: 6 x PUSH_MAX_MESSAGE_BYTES, 480 KB by default) crosses a 1 Mbit/s link in 4 s; a body
#: trickled slower than that holds a connection for no one's benefit.
DEFAULT_BODY_TIMEOUT_S = 10.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a wrong value; the message names the variable."""


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


def _number(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str, str], Any]:
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
        return value

    return parse


def _mailbox_template(name: str, raw: str) -> str:
    if raw.count("{user_id}") != 1:
        raise ConfigError(f"{name} must contain {{user_id}} exactly once, got {raw!r}")
    if "{" in raw.replace("{user_id}", "") or "}" in raw.replace("{user_id}", ""):
        raise ConfigError(f"{name} may hold no braces other than {{user_id}}, got {raw!r}")
    return raw


def _text(name: str, raw: str) -> str:
    return raw


def _hook_url(name: str, raw: str) -> str | None:
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


def _optional_text(name: str, raw: str) -> str | None:
    return raw.strip() or None


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    short = [key for key in keys if len(key) < MIN_API_KEY_CHARS]
    if short:
        raise ConfigError(f"{name}: each key needs at least {MIN_API_KEY_CHARS} characters")
    return keys


def _algorithms(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    wrong = [algorithm for algorithm in names if algorithm not in ALLOWED_JWT_ALGORITHMS]
    if not names or wrong:
        raise ConfigError(
            f"{name} is a comma list of {', '.join(sorted(ALLOWED_JWT_ALGORITHMS))}, got {raw!r}"
        )
    return names


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ConfigError(
                f"{name} is a comma list of origins like https://app.example.com, got {origin!r}"
            )
    return origins


def _redis_url(name: str, raw: str) -> str:
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


#: environment variable -> (app.config key, parser, default)
SETTINGS: dict[str, tuple[str, Callable[[str, str], Any], Any]] = {
    "REDIS_URL": ("REDIS_URL", _redis_url, DEFAULT_REDIS_URL),
    "PUSH_REDIS_CLUSTER": ("PUSH_REDIS_CLUSTER", _boolean, False),
    "PUSH_DEMO": ("PUSH_DEMO", _boolean, False),
    "PUSH_DEMO_FORCE": ("PUSH_DEMO_FORCE", _boolean, False),
    "PUSH_MAILBOX_KEY": ("PUSH_MAILBOX_KEY", _mailbox_template, DEFAULT_MAILBOX_KEY),
    "PUSH_HEARTBEAT_S": ("PUSH_HEARTBEAT_S", _number(float, 0.05, 3600), DEFAULT_HEARTBEAT_S),
    "PUSH_HISTORY_MAX": ("PUSH_HISTORY_MAX", _number(int, 10, 10_000_000), DEFAULT_HISTORY_MAX),
    "PUSH_HISTORY_TTL_S": (
        "PUSH_HISTORY_TTL_S",
        _number(int, 60, 10 * 365 * 86400),
        DEFAULT_HISTORY_TTL_S,
    ),
    "PUSH_MAX_MESSAGE_BYTES": (
        "PUSH_MAX_MESSAGE_BYTES",
        _number(int, 16, 64 * 1024 * 1024),
        DEFAULT_MAX_MESSAGE_BYTES,
    ),
    "PUSH_MAILBOX_MAX": ("PUSH_MAILBOX_MAX", _number(int, 1, 100_000_000), DEFAULT_MAILBOX_MAX),
    "PUSH_MAILBOX_TTL_S": (
        "PUSH_MAILBOX_TTL_S",
        _number(int, 1, 10 * 365 * 86400),
        DEFAULT_MAILBOX_TTL_S,
    ),
    "PUSH_MAILBOX_SWEEP_S": (
        "PUSH_MAILBOX_SWEEP_S",
        _number(float, 0.05, 86400),
        DEFAULT_MAILBOX_SWEEP_S,
    ),
    "PUSH_DEAD_LETTER_TTL_S": (
        "PUSH_DEAD_LETTER_TTL_S",
        _number(int, 1, 10 * 365 * 86400),
        DEFAULT_DEAD_LETTER_TTL_S,
    ),
    "PUSH_IDEMPOTENCY_MAX_BYTES": (
        "PUSH_IDEMPOTENCY_MAX_BYTES",
        _number(int, 1024, 1 << 40),
        DEFAULT_IDEMPOTENCY_MAX_BYTES,
    ),
    "PUSH_BODY_TIMEOUT_S": (
        "PUSH_BODY_TIMEOUT_S",
        _number(float, 0.1, 600),
        DEFAULT_BODY_TIMEOUT_S,
    ),
    "PUSH_OUTBOX_MAX": ("PUSH_OUTBOX_MAX", _number(int, 1, 1_000_000), DEFAULT_OUTBOX_MAX),
    "PUSH_RETRY_MS": ("PUSH_RETRY_MS", _number(int, 100, 3_600_000), DEFAULT_RETRY_MS),
    "PUSH_WS_PING_S": ("PUSH_WS_PING_S", _number(float, 0.5, 3600), DEFAULT_WS_PING_S),
    "PUSH_BLOCK_S": ("PUSH_BLOCK_S", _number(float, 0.1, 300), DEFAULT_BLOCK_S),
    "PUSH_REDIS_POOL_SIZE": (
        "PUSH_REDIS_POOL_SIZE",
        _number(int, 2, 10_000),
        DEFAULT_REDIS_POOL_SIZE,
    ),
    "PUSH_DRAIN_BATCH": ("PUSH_DRAIN_BATCH", _number(int, 1, 10_000), DEFAULT_DRAIN_BATCH),
    "PUSH_MAILBOX_WATCH": (
        "PUSH_MAILBOX_WATCH",
        _choice(*MAILBOX_WATCH_MODES),
        DEFAULT_MAILBOX_WATCH,
    ),
    "PUSH_JWT_SECRET": ("PUSH_JWT_SECRET", _optional_text, None),
    "PUSH_JWT_ALGORITHMS": ("PUSH_JWT_ALGORITHMS", _algorithms, DEFAULT_JWT_ALGORITHMS),
    "PUSH_JWT_AUDIENCE": ("PUSH_JWT_AUDIENCE", _optional_text, None),
    "PUSH_JWT_ISSUER": ("PUSH_JWT_ISSUER", _optional_text, None),
    "PUSH_JWT_LEEWAY_S": ("PUSH_JWT_LEEWAY_S", _number(int, 0, 300), DEFAULT_JWT_LEEWAY_S),
    "PUSH_JWT_MAX_AGE_S": (
        "PUSH_JWT_MAX_AGE_S",
        _number(int, 60, 366 * 86400),
        DEFAULT_JWT_MAX_AGE_S,
    ),
    "PUSH_TOKEN_COOKIE": ("PUSH_TOKEN_COOKIE", _text, DEFAULT_TOKEN_COOKIE),
    "PUSH_AUTH_URL": ("PUSH_AUTH_URL", _hook_url, None),
    "PUSH_AUTH_CACHE_S": ("PUSH_AUTH_CACHE_S", _number(float, 0, 3600), DEFAULT_AUTH_CACHE_S),
    "PUSH_AUTH_TIMEOUT_S": (
        "PUSH_AUTH_TIMEOUT_S",
        _number(float, 0.05, 30),
        DEFAULT_AUTH_TIMEOUT_S,
    ),
    "PUSH_TICKET_TTL_S": ("PUSH_TICKET_TTL_S", _number(int, 1, 3600), DEFAULT_TICKET_TTL_S),
    "PUSH_ALLOWED_ORIGINS": ("PUSH_ALLOWED_ORIGINS", _origins, ()),
    "PUSH_MAX_CONNECTIONS_PER_USER": (
        "PUSH_MAX_CONNECTIONS_PER_USER",
        _number(int, 1, 100_000),
        DEFAULT_MAX_CONNECTIONS_PER_USER,
    ),
    "PUSH_API_KEY": ("PUSH_API_KEY", _keys, ()),
    "PUSH_API_RATE": ("PUSH_API_RATE", _number(int, 0, 1_000_000), DEFAULT_API_RATE),
    "PUSH_REVOCATION_TTL_S": (
        "PUSH_REVOCATION_TTL_S",
        _number(int, 60, 10 * 365 * 86400),
        DEFAULT_REVOCATION_TTL_S,
    ),
    "PUSH_METRICS_TOKEN": ("PUSH_METRICS_TOKEN", _optional_text, None),
    "PUSH_LOG_FORMAT": ("PUSH_LOG_FORMAT", _choice("text", "json"), "text"),
    "PUSH_RECONNECT_SPREAD_S": (
        "PUSH_RECONNECT_SPREAD_S",
        _number(float, 0, 600),
        DEFAULT_RECONNECT_SPREAD_S,
    ),
    "PUSH_TRUSTED_PROXIES": ("PUSH_TRUSTED_PROXIES", _number(int, 0, 10), 0),
    "PUSH_PRESENCE_LEASE_S": (
        "PUSH_PRESENCE_LEASE_S",
        _number(float, 1, 3600),
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


def check_consistency(config: Mapping[str, Any]) -> None:
    """Rules that span settings; also applied to a test mapping."""
    for variable in ("PUSH_MAILBOX_KEY", "REDIS_URL"):
        parse = SETTINGS[variable][1]
        parse(variable, config[variable])
    _check_redis_mode(config["REDIS_URL"], config["PUSH_REDIS_CLUSTER"])
    if config["PUSH_DEMO"] and config["PUSH_JWT_SECRET"] and not config["PUSH_DEMO_FORCE"]:
        raise ConfigError(
            "PUSH_DEMO=1 with PUSH_JWT_SECRET set: demo mode streams to anyone by ?user_id=, "
            "so the secret would protect nothing; unset one of them, or set "
            "PUSH_DEMO_FORCE=1 if this is meant"
        )
    if not config["PUSH_DEMO"]:
        secret = config["PUSH_JWT_SECRET"]
        if not secret and config.get("PUSH_AUTH_URL"):
            # The site's session says who a user is; tickets live in Redis, no secret needed.
            pass
        elif not secret:
            raise ConfigError(
                "PUSH_JWT_SECRET is required outside demo mode (PUSH_DEMO=1) unless "
                "PUSH_AUTH_URL is set: streams are identified by tokens signed with it"
            )
        if secret and len(secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ConfigError(
                f"PUSH_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes, "
                f"got {len(secret.encode())}"
            )
        if "*" in config["PUSH_ALLOWED_ORIGINS"]:
            raise ConfigError("PUSH_ALLOWED_ORIGINS may be * only in demo mode (PUSH_DEMO=1)")
    if config["PUSH_HISTORY_MAX"] < 2 * config["PUSH_DRAIN_BATCH"]:
        raise ConfigError(
            "PUSH_HISTORY_MAX must be at least twice PUSH_DRAIN_BATCH "
            f"({config['PUSH_HISTORY_MAX']} < 2 x {config['PUSH_DRAIN_BATCH']})"
        )


def mailbox_expiry_ms(ttl_s: int) -> int:
    """The Redis expiry our writers give a mailbox: its TTL plus MAILBOX_EXPIRY_MARGIN_S.
    The sweep drops, counts and logs a mailbox once its TTL has passed since its last write
    (kept in its marker, whatever TTL the writer had); Redis's own expiry, the margin later,
    only catches one no service swept."""
    return (ttl_s + MAILBOX_EXPIRY_MARGIN_S) * 1000


def _check_redis_mode(url: str, cluster: bool) -> None:
    hosts = url.partition("://")[2].partition("/")[0].partition("?")[0].rpartition("@")[2]
    several_hosts = "," in hosts
    if not cluster:
        if several_hosts and not url.startswith("redis+sentinel://"):
            raise ConfigError(
                "REDIS_URL names several hosts: that is a cluster's seed nodes "
                "(set PUSH_REDIS_CLUSTER=1) or sentinels (use redis+sentinel://)"
            )
        return
    if not url.startswith(("redis://", "rediss://")):
        raise ConfigError(
            "PUSH_REDIS_CLUSTER=1 needs REDIS_URL to be redis:// or rediss:// seed nodes "
            f"(host:port[,host:port]), got {url!r}"
        )
    try:
        parse_cluster_seeds(url)
    except ValueError as error:
        raise ConfigError(f"REDIS_URL with PUSH_REDIS_CLUSTER=1: {error}, got {url!r}") from None


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

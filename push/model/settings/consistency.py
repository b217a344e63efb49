"""The rules that span settings: each value was checked alone when it was parsed; these
check them together (demo mode beside a secret, a secret's length outside demo mode, the
history's room for a drain batch, the Redis URL's shape for the mode)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from push.model.redis_urls import parse_cluster_seeds
from push.model.settings.defaults import MIN_JWT_SECRET_BYTES
from push.model.settings.parsers import ConfigError, mailbox_template, redis_url


def check_consistency(config: Mapping[str, Any]) -> None:
    """Rules that span settings; also applied to a test mapping."""
    # A test mapping may set these without their parser: check them as the parser would.
    mailbox_template("PUSH_MAILBOX_KEY", config["PUSH_MAILBOX_KEY"])
    redis_url("REDIS_URL", config["REDIS_URL"])
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

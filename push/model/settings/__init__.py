"""Settings: every default with its reason, read once from the environment.

Configuration flows one way: environment -> `parse_environ` -> `create_app` ->
`app.config` -> the typed `Settings`, made once and kept in the app's parts. A wrong
value raises `ConfigError` naming the variable, so the service refuses to start instead
of misbehaving later.

- `defaults.py`: every default and bound, each with its reason.
- `parsers.py`: one parser per kind of value, raising ConfigError.
- `environment.py`: which variable holds which setting; `parse_environ`, `load_config`.
- `consistency.py`: the rules that span settings.
- `typed.py`: `Settings` and `DeliverySettings`, the typed objects code reads.

This face names what the rest of push imports, so a caller need not know which of these
holds a name."""

from push.model.settings.consistency import check_consistency
from push.model.settings.defaults import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_MAX_COUNT,
    DEFAULT_IDEMPOTENCY_MAX_BYTES,
    DEFAULT_MAILBOX_KEY,
    DEFAULT_MAILBOX_MAX,
    DEFAULT_MAILBOX_TTL_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REVOCATION_TTL_S,
    IMPLICIT_JWT_AUDIENCE,
    JWT_MAX_AGE_CLOCK_SKEW_S,
    MAILBOX_EXPIRY_MARGIN_S,
    mailbox_expiry_ms,
)
from push.model.settings.environment import SETTINGS, load_config, parse_environ
from push.model.settings.parsers import ConfigError
from push.model.settings.typed import DeliverySettings, Settings, config_key

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "DEAD_LETTER_MAX_COUNT",
    "DEFAULT_IDEMPOTENCY_MAX_BYTES",
    "DEFAULT_MAILBOX_KEY",
    "DEFAULT_MAILBOX_MAX",
    "DEFAULT_MAILBOX_TTL_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_REVOCATION_TTL_S",
    "IMPLICIT_JWT_AUDIENCE",
    "JWT_MAX_AGE_CLOCK_SKEW_S",
    "MAILBOX_EXPIRY_MARGIN_S",
    "SETTINGS",
    "ConfigError",
    "DeliverySettings",
    "Settings",
    "check_consistency",
    "config_key",
    "load_config",
    "mailbox_expiry_ms",
    "parse_environ",
]

"""The service's parts, one typed object: `app.extensions["push"]`.

Flask's convention (one `app.extensions` entry per extension) with a type, so a view asks
`parts().store` and a reader of the view sees what that is. Made once by `create_app`;
nothing in it connects until first used (workers fork after the app is made)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from push.delivery.retention import Sweeper
from push.delivery.switchboard import Switchboard
from push.identity.tokens import TokenSettings
from push.model.settings import DeliverySettings
from push.storage.presence import Presence
from push.storage.store import Store

#: The key of the service's entry in `app.extensions`.
EXTENSION = "push"


@dataclass(frozen=True, slots=True)
class Parts:
    #: How delivery behaves (windows, batches, TTLs, the mailbox key template).
    delivery: DeliverySettings
    #: The Redis commands of the delivery path, and the pooled client under them.
    store: Store
    #: Who is connected, across every worker and host.
    presence: Presence
    #: The JWT checks' settings, or None when PUSH_JWT_SECRET is not set.
    tokens: TokenSettings | None
    #: This worker's local users and their tabs.
    switchboard: Switchboard
    #: The mailbox retention sweep, started by each serving process.
    sweeper: Sweeper
    #: A one-connection client with a short timeout, for /readyz.
    ready_redis: redis.Redis


def parts(app: Flask | None = None) -> Parts:
    """The parts of `app`, or of the app handling the current request."""
    return (app or current_app).extensions[EXTENSION]  # type: ignore[no-any-return]

"""Idempotency keys of publishing: a retry within 24 h queues nothing and returns the
first answer.

A key lives in a scope (the API's is one per API key) whose records are bounded in
bytes: past the bound the oldest records are forgotten (counted and logged), so a retry
that late queues again. The claim and store are Lua scripts (lua/idempotency_*.lua).
Imports redis and the standard library only, as push/publishing.py does."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import redis

from push.model.errors import PublishError
from push.storage.drops import IDEMPOTENCY_EVICTED, Throttle, counted
from push.storage.scripts import script

log = logging.getLogger(__name__)

#: How long an idempotency key is remembered.
IDEMPOTENCY_TTL_S = 24 * 3600
#: How long a retry waits for a first call with the same key that is still running.
IDEMPOTENCY_WAIT_S = 10.0
#: What a scope may be: it is spliced into key names.
SCOPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: What a record costs Redis beyond its name and answer, roughly: the key's own entry
#: and expiry, and its entries (a 64-character name each) in the scope's index and sizes.
IDEMPOTENCY_RECORD_OVERHEAD_BYTES = 200
_IN_PROGRESS = "in-progress"
#: Evictions are logged at most once a minute per scope (the metric counts each).
_evictions_logged = Throttle()


def _text(value: bytes | str | None) -> str | None:
    """Redis replies as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


class IdempotencyClaim:
    """Where an idempotency key's record lives: `{push:idempotency:<scope>}:<sha256>`, beside
    its scope's index of live records, their sizes and their total bytes (one hash slot
    per scope, for the scripts)."""

    __slots__ = ("index", "max_bytes", "member", "prefix", "record", "scope", "sizes", "total")

    def __init__(self, scope: str, idempotency_key: str, max_bytes: int) -> None:
        self.scope = scope
        self.member = hashlib.sha256(idempotency_key.encode()).hexdigest()
        self.prefix = f"{{push:idempotency:{scope}}}:"
        self.record = self.prefix + self.member
        self.index = self.prefix + "index"
        self.sizes = self.prefix + "sizes"
        self.total = self.prefix + "bytes"
        self.max_bytes = max_bytes

    @property
    def keys(self) -> list[str]:
        return [self.record, self.index, self.sizes, self.total]


def _remember(client: redis.Redis, claim: IdempotencyClaim, answer: str) -> None:
    """Store a claimed key's answer; count and log the records it pushed out."""
    evicted = int(
        script(client, "idempotency_store.lua")(
            keys=claim.keys,
            args=[
                claim.member,
                answer,
                claim.max_bytes,
                IDEMPOTENCY_RECORD_OVERHEAD_BYTES,
                claim.prefix,
                IDEMPOTENCY_TTL_S * 1000,
            ],
        )
    )
    if not evicted:
        return
    counted(IDEMPOTENCY_EVICTED, evicted)
    if count := _evictions_logged.add(claim.scope, evicted):
        log.warning(
            "idempotency records evicted scope=%s evicted=%d oldest records (past "
            "PUSH_IDEMPOTENCY_MAX_BYTES): a retry of one of them queues again",
            claim.scope,
            count,
        )


def once(
    client: redis.Redis,
    claim: IdempotencyClaim,
    fingerprint: str,
    work: Callable[[], dict[str, int]],
) -> dict[str, int]:
    """Run `work` once per key: the claim script takes it, retries read the stored answer."""
    answer = script(client, "idempotency_claim.lua")(
        keys=claim.keys, args=[claim.member, IDEMPOTENCY_TTL_S * 1000]
    )
    if int(answer[0]) == 1:
        try:
            online = work()
        except BaseException:
            with client.pipeline(transaction=False) as pipe:
                pipe.delete(claim.record)
                pipe.zrem(claim.index, claim.member)
                pipe.execute()
            raise
        _remember(client, claim, json.dumps({"fingerprint": fingerprint, "online": online}))
        return online
    stored = answer[1]
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_S
    while _text(stored) == _IN_PROGRESS:
        if time.monotonic() > deadline:
            raise PublishError("idempotency_in_progress", "a call with this key is still running")
        time.sleep(0.01)
        stored = client.get(claim.record)
    if stored is None:  # the first call failed and let go of the key: try again
        return once(client, claim, fingerprint, work)
    record: dict[str, Any] = json.loads(_text(stored) or "{}")
    if record["fingerprint"] != fingerprint:
        raise PublishError(
            "idempotency_key_reused", "this idempotency key was used with another request"
        )
    return record["online"]

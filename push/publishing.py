"""Publishing for backends in Python: the producers' contract plus what they ask for.

`publish(client, "42", {"kind": "like"})` does what any producer does,
`LPUSH user_42_messages '{"kind":"like"}'`, after the checks the service would
make anyway (user id, size, UTF-8), and answers how many connections the user
has now. `publish_many` does it for many users in one round trip. The mailbox is held
to its cap and TTL in the same script that writes (past the cap the oldest messages go,
counted and logged: retention.py). With an idempotency key, a retry within 24 h queues
nothing and returns the first answer; keys live in a scope (the API's is one per API key)
whose records are bounded in bytes: past the bound the oldest records are forgotten
(counted and logged), so a retry that late queues again.
`disconnect(client, "42")` closes every open connection of the user and refuses
the tokens issued before it (a logout, a ban, a password change).

The HTTP API and the CLI publish through these functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

import redis

from push.model.keys import InvalidUserId, user_keys, validate_user_id
from push.model.settings import (
    DEFAULT_IDEMPOTENCY_MAX_BYTES,
    DEFAULT_MAILBOX_KEY,
    DEFAULT_MAILBOX_MAX,
    DEFAULT_MAILBOX_TTL_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_REVOCATION_TTL_S,
    mailbox_expiry_ms,
)
from push.storage.clients import queue_script
from push.storage.cluster import ClusterOnFirstUse
from push.storage.drops import (
    IDEMPOTENCY_EVICTED,
    MAILBOX_FULL,
    Throttle,
    counted,
    messages_expired,
)
from push.storage.scripts import script

log = logging.getLogger(__name__)

#: Characters a disconnect's reason may have (it is sent to the user's clients).
MAX_REASON_CHARS = 200
#: What a reason may not hold (a close frame's reason and an SSE line are single lines).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
#: How long an idempotency key is remembered.
IDEMPOTENCY_TTL_S = 24 * 3600
#: How long a retry waits for a first call with the same key that is still running.
IDEMPOTENCY_WAIT_S = 10.0
#: The idempotency scope of callers without an API key (this helper, the CLI).
DIRECT_SCOPE = "direct"
#: What a scope may be: it is spliced into key names.
SCOPE_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: What a record costs Redis beyond its name and answer, roughly: the key's own entry
#: and expiry, and its entries (a 64-character name each) in the scope's index and sizes.
IDEMPOTENCY_RECORD_OVERHEAD_BYTES = 200
_IN_PROGRESS = "in-progress"
#: Evictions are logged at most once a minute per scope (the metric counts each).
_evictions_logged = Throttle()


class PublishError(ValueError):
    """A message the service would refuse; `code` is stable (the API's `error`)."""

    def __init__(self, code: str, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        #: When a retry may succeed (for codes that say to retry later).
        self.retry_after_s = retry_after_s


def encode_payload(data: object, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """The bytes to LPUSH: str as UTF-8, bytes if UTF-8, anything else as compact JSON."""
    if isinstance(data, bytes):
        try:
            data.decode()
        except UnicodeDecodeError:
            raise PublishError("not_utf8", "the payload is not UTF-8") from None
        payload = data
    elif isinstance(data, str):
        try:
            payload = data.encode()
        except UnicodeEncodeError:
            raise PublishError("not_utf8", "the payload has unpaired surrogates") from None
    else:
        try:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise PublishError("not_serializable", f"data is not JSON: {error}") from None
        payload = text.encode()
    if len(payload) > max_bytes:
        raise PublishError(
            "too_large", f"the payload is {len(payload)} bytes, more than the {max_bytes} allowed"
        )
    return payload


def _checked_ids(user_ids: Iterable[object]) -> list[str]:
    checked = []
    for user_id in user_ids:
        try:
            checked.append(validate_user_id(user_id))
        except InvalidUserId as error:
            raise PublishError("invalid_user_id", f"{user_id!r}: {error}") from None
    return list(dict.fromkeys(checked))


def publish(
    client: redis.Redis,
    user_id: str,
    data: object,
    *,
    idempotency_key: str | None = None,
    mailbox_key: str = DEFAULT_MAILBOX_KEY,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    mailbox_max: int = DEFAULT_MAILBOX_MAX,
    mailbox_ttl_s: int = DEFAULT_MAILBOX_TTL_S,
    idempotency_scope: str = DIRECT_SCOPE,
    idempotency_max_bytes: int = DEFAULT_IDEMPOTENCY_MAX_BYTES,
) -> int:
    """Queue `data` for `user_id`; returns how many connections the user has now."""
    online = publish_many(
        client,
        [user_id],
        data,
        idempotency_key=idempotency_key,
        mailbox_key=mailbox_key,
        max_bytes=max_bytes,
        mailbox_max=mailbox_max,
        mailbox_ttl_s=mailbox_ttl_s,
        idempotency_scope=idempotency_scope,
        idempotency_max_bytes=idempotency_max_bytes,
    )
    return online[user_id]


def publish_many(
    client: redis.Redis,
    user_ids: Iterable[str],
    data: object,
    *,
    idempotency_key: str | None = None,
    mailbox_key: str = DEFAULT_MAILBOX_KEY,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    mailbox_max: int = DEFAULT_MAILBOX_MAX,
    mailbox_ttl_s: int = DEFAULT_MAILBOX_TTL_S,
    idempotency_scope: str = DIRECT_SCOPE,
    idempotency_max_bytes: int = DEFAULT_IDEMPOTENCY_MAX_BYTES,
) -> dict[str, int]:
    """Queue the same `data` for every user, in one round trip; {user id: connections}.

    Each mailbox keeps its newest `mailbox_max` messages (the dropped ones are counted
    and logged) and expires `mailbox_ttl_s` after its last write. An idempotency key is
    known within its `idempotency_scope` only, whose records add up to at most
    `idempotency_max_bytes` (past it the oldest are forgotten: a retry of one of those
    queues again)."""
    if mailbox_max < 1:
        raise ValueError(f"mailbox_max is at least 1, got {mailbox_max!r}")
    ids = _checked_ids(user_ids)
    payload = encode_payload(data, max_bytes)
    limits = (mailbox_max, mailbox_expiry_ms(mailbox_ttl_s))

    def push() -> dict[str, int]:
        return _push(client, ids, payload, mailbox_key, limits)

    if idempotency_key is None:
        return push()
    if not SCOPE_PATTERN.fullmatch(idempotency_scope):
        raise ValueError(f"a scope is 1-64 of [A-Za-z0-9_.:-], got {idempotency_scope!r}")
    fingerprint = hashlib.sha256(json.dumps(ids).encode() + b"\0" + payload).hexdigest()
    claim = IdempotencyClaim(idempotency_scope, idempotency_key, idempotency_max_bytes)
    return _once(client, claim, fingerprint, push)


def disconnect(
    client: redis.Redis,
    user_id: str,
    reason: str = "",
    *,
    mailbox_key: str = DEFAULT_MAILBOX_KEY,
    ttl_s: int = DEFAULT_REVOCATION_TTL_S,
) -> int:
    """Close every open connection of `user_id`, on every worker and host, within a second
    (WebSocket 4403 "revoked", SSE `event: revoked`), and refuse the tokens issued before
    now (`iat`; a token without one counts as before) for `ttl_s` seconds: set it at least
    as long as the longest-lived token you issue. Returns the connections that were open."""
    (checked,) = _checked_ids([user_id])
    if (
        not isinstance(reason, str)
        or len(reason) > MAX_REASON_CHARS
        or CONTROL_CHARACTERS.search(reason)
    ):
        raise PublishError(
            "invalid_reason",
            f"a reason is text of at most {MAX_REASON_CHARS} characters, no control characters",
        )
    keys = user_keys(checked, mailbox_key)
    sharded = isinstance(client, redis.RedisCluster | ClusterOnFirstUse)
    open_connections, _ = script(client, "revoke.lua")(
        keys=[keys.revoked, keys.presence, keys.wake],
        args=[ttl_s * 1000, "SPUBLISH" if sharded else "PUBLISH", reason],
    )
    return int(open_connections)


def _push(
    client: redis.Redis,
    ids: list[str],
    payload: bytes,
    mailbox_key: str,
    limits: tuple[int, int],
) -> dict[str, int]:
    """LPUSH to every mailbox, held to (cap, expiry ms); {user id: connections}."""
    write = script(client, "publish.lua")
    count = script(client, "presence_count.lua")
    with client.pipeline(transaction=False) as pipe:
        for user_id in ids:
            keys = user_keys(user_id, mailbox_key)
            queue_script(pipe, write, [keys.mailbox, keys.swept], [payload, *limits])
            queue_script(pipe, count, [keys.presence, keys.state], [])
        replies = pipe.execute()
    for i, user_id in enumerate(ids):
        if dropped := int(replies[2 * i]):
            messages_expired(MAILBOX_FULL, user_keys(user_id, mailbox_key).mailbox, dropped)
    return {user_id: int(replies[2 * i + 1][0]) for i, user_id in enumerate(ids)}


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


def _once(client: redis.Redis, claim: IdempotencyClaim, fingerprint: str, work) -> dict[str, int]:
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
        return _once(client, claim, fingerprint, work)
    record: dict[str, Any] = json.loads(_text(stored) or "{}")
    if record["fingerprint"] != fingerprint:
        raise PublishError(
            "idempotency_key_reused", "this idempotency key was used with another request"
        )
    return record["online"]

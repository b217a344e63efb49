"""Publishing for backends in Python: the producers' contract plus what they ask for.

`publish(client, "42", {"kind": "like"})` does what any producer does,
`LPUSH user_42_messages '{"kind":"like"}'`, after the checks the service would
make anyway (user id, size, UTF-8), and answers how many connections the user
has now. `publish_many` does it for many users in one round trip. With an
idempotency key, a retry within 24 h queues nothing and returns the first answer.
`disconnect(client, "42")` closes every open connection of the user and refuses
the tokens issued before it (a logout, a ban, a password change).

The HTTP API and the CLI publish through these functions.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable
from typing import Any

import redis

from push.config import DEFAULT_MAILBOX_KEY, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_REVOCATION_TTL_S
from push.keys import InvalidUserId, user_keys, validate_user_id
from push.redis_clients import queue_script
from push.redis_cluster import ClusterOnFirstUse
from push.store import script

#: Characters a disconnect's reason may have (it is sent to the user's clients).
MAX_REASON_CHARS = 200
#: What a reason may not hold (a close frame's reason and an SSE line are single lines).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
#: How long an idempotency key is remembered.
IDEMPOTENCY_TTL_S = 24 * 3600
#: How long a retry waits for a first call with the same key that is still running.
IDEMPOTENCY_WAIT_S = 10.0
_IN_PROGRESS = "in-progress"


class PublishError(ValueError):
    """A message the service would refuse; `code` is stable (the API's `error`)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


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
) -> int:
    """Queue `data` for `user_id`; returns how many connections the user has now."""
    online = publish_many(
        client,
        [user_id],
        data,
        idempotency_key=idempotency_key,
        mailbox_key=mailbox_key,
        max_bytes=max_bytes,
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
) -> dict[str, int]:
    """Queue the same `data` for every user, in one round trip; {user id: connections}."""
    ids = _checked_ids(user_ids)
    payload = encode_payload(data, max_bytes)
    if idempotency_key is None:
        return _push(client, ids, payload, mailbox_key)
    fingerprint = hashlib.sha256(json.dumps(ids).encode() + b"\0" + payload).hexdigest()
    return _once(
        client, idempotency_key, fingerprint, lambda: _push(client, ids, payload, mailbox_key)
    )


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


def _push(client: redis.Redis, ids: list[str], payload: bytes, mailbox_key: str) -> dict[str, int]:
    count = script(client, "presence_count.lua")
    with client.pipeline(transaction=False) as pipe:
        for user_id in ids:
            keys = user_keys(user_id, mailbox_key)
            pipe.lpush(keys.mailbox, payload)
            queue_script(pipe, count, [keys.presence, keys.state], [])
        replies = pipe.execute()
    return {user_id: int(replies[2 * i + 1][0]) for i, user_id in enumerate(ids)}


def _text(value: bytes | str | None) -> str | None:
    """Redis replies as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def idempotency_store_key(idempotency_key: str) -> str:
    return "push:idempotency:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def _once(client: redis.Redis, idempotency_key: str, fingerprint: str, work) -> dict[str, int]:
    """Run `work` once per key: SET NX claims it, retries read the stored answer."""
    key = idempotency_store_key(idempotency_key)
    if client.set(key, _IN_PROGRESS, nx=True, ex=IDEMPOTENCY_TTL_S):
        try:
            answer = work()
        except BaseException:
            client.delete(key)
            raise
        client.set(
            key, json.dumps({"fingerprint": fingerprint, "online": answer}), ex=IDEMPOTENCY_TTL_S
        )
        return answer
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_S
    while _text(stored := client.get(key)) == _IN_PROGRESS:
        if time.monotonic() > deadline:
            raise PublishError("idempotency_in_progress", "a call with this key is still running")
        time.sleep(0.01)
    if stored is None:  # the first call failed and let go of the key: try again
        return _once(client, idempotency_key, fingerprint, work)
    record: dict[str, Any] = json.loads(_text(stored) or "{}")
    if record["fingerprint"] != fingerprint:
        raise PublishError(
            "idempotency_key_reused", "this idempotency key was used with another request"
        )
    return record["online"]

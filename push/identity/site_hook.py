"""PUSH_AUTH_URL: ask the site who a request is, from the site's own session.

A request that carries no push token or ticket is passed on to the site's hook: a GET
with the request's `Cookie` and `Authorization` headers, no redirects followed. The
site answers `200 {"user_id": "42", "expires_in": 300}` (admitted as user 42 until
then, like a token's exp), 401 or 403 (refused: 401 `unauthorized`); anything else,
or nothing within PUSH_AUTH_TIMEOUT_S, counts as the site being away (`HookUnavailable`,
which streams treat like Redis being away).

Answers are kept per worker process, in memory, keyed by an HMAC of the two headers
under a random per-process key (a cookie is never kept in clear): admissions for the
shorter of expires_in and PUSH_AUTH_CACHE_S, refusals for REFUSAL_CACHE_S, failures
for AWAY_CACHE_S. Concurrent
requests with the same headers wait for one call. Not in Redis: an entry is only worth
the one HTTP call it saves, a shared cache would put session identifiers (hashed or
not) where every worker and operator can read them, and the hook must still answer
when Redis is what is away.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gevent

from push.identity.tokens import Identity
from push.metrics import AUTH_HOOK
from push.model.errors import HookUnavailable, Refusal
from push.model.keys import InvalidUserId, validate_user_id
from push.storage.drops import Throttle

log = logging.getLogger("push.authhook")

#: What clients are told when the site gives no usable answer: the cause (an errno text,
#: a TLS error naming hosts, the site's status) is logged, not sent to whoever asks.
UNAVAILABLE = "the site's auth hook is unavailable"

#: Seconds a refusal (401/403) is reused: a storm of logged-out tabs asks once per
#: session in that time, and a user who has just logged in waits no longer than this.
REFUSAL_CACHE_S = 5.0
#: Seconds a failure (5xx, timeout, unreachable, malformed) is reused: EventSource
#: reconnects every PUSH_RETRY_MS, so without it every tab of a failing site would call
#: it again on each reconnect; short, so the site's recovery is seen within a second.
AWAY_CACHE_S = 1.0
#: Sessions remembered per worker process; the least recently used go first. Each entry
#: is ~200 bytes: the bound keeps a worker's cache near 2 MB however many sessions come.
CACHE_ENTRIES = 10_000
#: Bytes of the site's answer read: `{"user_id": ..., "expires_in": ...}` is small.
MAX_ANSWER_BYTES = 4096
#: The longest session an answer is taken for when no other bound is given (the service
#: passes PUSH_JWT_MAX_AGE_S, the longest a token may live).
MAX_EXPIRES_IN_S = 366 * 86400


@dataclass(slots=True)
class _Answer:
    """What the site said for one session key, and until when it is reused: an identity,
    a refusal (identity None) or a failure (error set)."""

    identity: Identity | None
    #: time.monotonic() after which the answer is asked again.
    fresh_until: float
    #: Why the site gave no usable answer (identity is then None and this is raised).
    error: HookUnavailable | None = None


@dataclass(slots=True)
class _Call:
    """One call to the site in flight: requests with the same key wait on `done` and take
    its answer (or its error) instead of calling again."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: _Answer | None = None
    error: HookUnavailable | None = None


def refused() -> Refusal:
    """The 401 for a request the site says belongs to nobody signed in."""
    return Refusal(
        401,
        "unauthorized",
        "the site says this request belongs to nobody signed in",
        {"WWW-Authenticate": 'Bearer error="unauthorized"'},
    )


def parse_answer(body: bytes, max_expires_in_s: float = MAX_EXPIRES_IN_S) -> tuple[str, float]:
    """(user_id, expires_in) from a 200 answer, or ValueError saying what is wrong (any
    failure to parse it, however deep or large, is a ValueError). An expires_in past
    `max_expires_in_s` (PUSH_JWT_MAX_AGE_S in the service) is cut to it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the answer is not JSON") from None
    except RecursionError:
        raise ValueError("the answer is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    user_id = data.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)  # at most MAX_ANSWER_BYTES digits: well under int's limit
    try:
        user_id = validate_user_id(user_id)
    except InvalidUserId as error:
        raise ValueError(f"user_id: {error}") from None
    expires_in = data.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise ValueError("expires_in must be a number of seconds")
    # Compared before any float(): an int of hundreds of digits does not fit one.
    if isinstance(expires_in, float) and not math.isfinite(expires_in):
        raise ValueError("expires_in must be a finite number of seconds")
    if not expires_in > 0:
        raise ValueError("expires_in must be more than 0 seconds")
    return user_id, float(min(expires_in, max_expires_in_s))


#: One warning per distinct cause every LOG_EVERY_S, carrying how many it stands for.
_failures = Throttle()


class AuthHook:
    """The site's hook at `url`, its answers cached and concurrent asks coalesced."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        cache_s: float,
        max_age_s: float = MAX_EXPIRES_IN_S,
        entries: int = CACHE_ENTRIES,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        #: The longest session an answer is taken for: a longer expires_in is cut to it.
        self.max_age_s = max_age_s
        self._entries = entries
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Answer] = OrderedDict()
        self._calls: dict[bytes, _Call] = {}

    def cache_key(self, cookie: str, authorization: str) -> bytes:
        message = (
            cookie.encode("latin-1", "replace") + b"\0" + authorization.encode("latin-1", "replace")
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def identify(self, cookie: str, authorization: str) -> Identity:
        """Who the site says these headers belong to; Refusal (401) or HookUnavailable."""
        key = self.cache_key(cookie, authorization)
        with self._lock:
            answer = self._cache.get(key)
            if answer is not None and answer.fresh_until > time.monotonic():
                self._cache.move_to_end(key)
                return self._result(answer)
            call = self._calls.get(key)
            leading = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leading:
            if not call.done.wait(self.timeout_s + 1):
                raise HookUnavailable(UNAVAILABLE)
            if call.answer is None:
                raise HookUnavailable(UNAVAILABLE)
            return self._result(call.answer)
        try:
            call.answer = self._ask(cookie, authorization)
            self._remember(key, call.answer)
            return self._result(call.answer)
        except HookUnavailable as error:
            count = _failures.add(str(error), 1)
            if count:
                log.warning("auth hook failing (%d times): %s", count, error)
            call.error = HookUnavailable(UNAVAILABLE)
            away = min(AWAY_CACHE_S, self.cache_s)
            self._remember(key, _Answer(None, time.monotonic() + away, call.error))
            raise call.error from None
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.done.set()

    def forget(self, cookie: str, authorization: str) -> None:
        """Drop the cached answer for these headers: the next identify asks the site."""
        key = self.cache_key(cookie, authorization)
        with self._lock:
            self._cache.pop(key, None)

    def _result(self, answer: _Answer) -> Identity:
        if answer.error is not None:
            raise HookUnavailable(*answer.error.args)
        if answer.identity is None:
            raise refused()
        return answer.identity

    def _remember(self, key: bytes, answer: _Answer) -> None:
        if answer.fresh_until <= time.monotonic():
            return
        with self._lock:
            self._cache[key] = answer
            self._cache.move_to_end(key)
            now = time.monotonic()
            while len(self._cache) > self._entries:
                self._cache.popitem(last=False)
            # Drop a few stale entries from the old end on each write.
            for _ in range(4):
                oldest = next(iter(self._cache.items()), None)
                if oldest is None or oldest[1].fresh_until > now:
                    break
                del self._cache[oldest[0]]

    def _ask(self, cookie: str, authorization: str) -> _Answer:
        """One GET to the hook (no redirects: http.client follows none)."""
        started = time.monotonic()
        headers = {"Accept": "application/json", "User-Agent": "push-auth-hook"}
        if cookie:
            headers["Cookie"] = cookie
        if authorization:
            headers["Authorization"] = authorization
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self.timeout_s)
        # http.client's timeout bounds each connect and read, not the call: a site that
        # trickles a header line at a time would hold the request for ever. One deadline
        # for the whole call (the service runs under gevent, so every socket wait yields).
        deadline = gevent.Timeout(self.timeout_s)
        deadline.start()
        try:
            connection.request("GET", self._target, headers=headers)
            response = connection.getresponse()
            body = response.read(MAX_ANSWER_BYTES + 1)
        except gevent.Timeout as error:
            if error is not deadline:
                raise
            AUTH_HOOK.labels("timeout").inc()
            raise HookUnavailable("the site's auth hook did not answer in time") from None
        except TimeoutError:
            AUTH_HOOK.labels("timeout").inc()
            raise HookUnavailable("the site's auth hook did not answer in time") from None
        except (OSError, ValueError, http.client.HTTPException) as error:
            AUTH_HOOK.labels("unreachable").inc()
            raise HookUnavailable(f"the site's auth hook is unreachable: {error}") from None
        finally:
            deadline.close()
            connection.close()
        if time.monotonic() - started > self.timeout_s:
            AUTH_HOOK.labels("timeout").inc()
            raise HookUnavailable("the site's auth hook did not answer in time")
        if response.status in (401, 403):
            AUTH_HOOK.labels("refused").inc()
            return _Answer(None, time.monotonic() + min(REFUSAL_CACHE_S, self.cache_s))
        if response.status != 200:
            AUTH_HOOK.labels("bad_status").inc()
            raise HookUnavailable(f"the site's auth hook answered {response.status}")
        if len(body) > MAX_ANSWER_BYTES:
            AUTH_HOOK.labels("malformed").inc()
            raise HookUnavailable("the site's auth hook answered too much")
        try:
            user_id, expires_in = parse_answer(body, self.max_age_s)
        except (ValueError, RecursionError, OverflowError) as error:
            AUTH_HOOK.labels("malformed").inc()
            raise HookUnavailable(f"the site's auth hook answered badly: {error}") from None
        AUTH_HOOK.labels("admitted").inc()
        now = time.time()
        identity = Identity(user_id, expires_at=now + expires_in, issued_at=now)
        return _Answer(identity, time.monotonic() + min(expires_in, self.cache_s))

"""Limits the README states in numbers and names, end to end through real gunicorn:
the dead-letter list keeps the last 1000, PUSH_JWT_ALGORITHMS may add HS384/HS512, a
user's history lives PUSH_HISTORY_TTL_S after its last message, and a publish whose
Idempotency-Key is held by a call still running answers 409 `idempotency_in_progress`.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import jwt
import pytest
import redis
from clients import drainer_pids, open_sse, wait_until
from conftest import API_KEYS, _start_service
from servers import Gunicorn

pytestmark = pytest.mark.e2e

#: Over 64 bytes: PyJWT warns of a shorter HMAC key for HS512 (48 for HS384).
SECRET = "documented-limits-secret-" + "0123456789abcdef" * 3 + "0123456789ab"
#: The README: "The list keeps the last 1000".
DEAD_LETTERS_KEPT = 1000
#: PUSH_HISTORY_TTL_S for the history test (seconds).
HISTORY_TTL_S = 600
#: The README: "the same key ... within 24 h"; the wait of a retry for a running call.
IDEMPOTENCY_WAIT_S = 10


def mailbox(user_id: str) -> str:
    return f"user_{user_id}_messages"


@pytest.fixture(scope="module")
def raw_redis(redis_server) -> Iterator[redis.Redis]:
    """A client that returns bytes: dead letters need not be UTF-8."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


# The dead-letter list ------------------------------------------------------------------


def test_the_dead_letter_list_keeps_the_last_1000(base_url, r, raw_redis, user_id):
    poison = [b"\xff poison %d" % n for n in range(DEAD_LETTERS_KEPT + 5)]
    with open_sse(base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        r.lpush(mailbox(user_id), *poison)  # oldest first, as LPUSH takes them
        r.lpush(mailbox(user_id), "after the poison")
        assert stream.next_event(timeout=30).data == "after the poison"
    dead = f"{{{mailbox(user_id)}}}:dead"
    kept = raw_redis.lrange(dead, 0, -1)
    assert len(kept) == DEAD_LETTERS_KEPT
    assert set(kept) == set(poison[-DEAD_LETTERS_KEPT:])  # the newest, the oldest 5 gone
    assert 0 < raw_redis.pttl(dead) <= 7 * 86400 * 1000  # PUSH_DEAD_LETTER_TTL_S


# HS384 and HS512 -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_services(redis_server, tmp_path_factory) -> Iterator[dict[str, Gunicorn]]:
    """The service with the default algorithm list (HS256) and with HS384/HS512 added."""
    services = {
        "default": _start_service(
            redis_server.url,
            tmp_path_factory.mktemp("gunicorn-hs256"),
            PUSH_DEMO="",
            PUSH_JWT_SECRET=SECRET,
        ),
        "all": _start_service(
            redis_server.url,
            tmp_path_factory.mktemp("gunicorn-hs-all"),
            PUSH_DEMO="",
            PUSH_JWT_SECRET=SECRET,
            PUSH_JWT_ALGORITHMS="HS256,HS384,HS512",
        ),
        "hs512": _start_service(
            redis_server.url,
            tmp_path_factory.mktemp("gunicorn-hs512"),
            PUSH_DEMO="",
            PUSH_JWT_SECRET=SECRET,
            PUSH_JWT_ALGORITHMS="HS512",
        ),
    }
    yield services
    for service in services.values():
        service.stop()


def stream_answer(base_url: str, algorithm: str) -> tuple[int, str]:
    """The status of `GET /stream` with a token signed with `algorithm`, and the error
    code of a refusal ("" for a stream that opened)."""
    token = jwt.encode({"sub": "signed", "exp": int(time.time()) + 300}, SECRET, algorithm)
    with open_sse(base_url, {"token": token}) as stream:
        if stream.status == 200:
            stream.wait_for_comment("connected")
            return 200, ""
        return stream.status, json.loads(stream.read_to_end())["error"]


@pytest.mark.parametrize(
    ("service", "algorithm", "answer"),
    [
        ("default", "HS256", (200, "")),
        ("default", "HS384", (401, "algorithm_not_allowed")),
        ("default", "HS512", (401, "algorithm_not_allowed")),
        ("all", "HS256", (200, "")),
        ("all", "HS384", (200, "")),
        ("all", "HS512", (200, "")),
        ("hs512", "HS512", (200, "")),
        ("hs512", "HS256", (401, "algorithm_not_allowed")),
    ],
)
def test_jwt_algorithms_may_add_hs384_and_hs512(token_services, r, service, algorithm, answer):
    assert stream_answer(token_services[service].base_url, algorithm) == answer


# The history's TTL ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_service(redis_server, tmp_path_factory) -> Iterator[Gunicorn]:
    service = _start_service(
        redis_server.url,
        tmp_path_factory.mktemp("gunicorn-history-ttl"),
        PUSH_HISTORY_TTL_S=str(HISTORY_TTL_S),
    )
    yield service
    service.stop()


def test_the_history_is_kept_its_ttl_after_the_last_message(history_service, r, user_id):
    history = f"{{{mailbox(user_id)}}}:history"
    window = (HISTORY_TTL_S - 30) * 1000, HISTORY_TTL_S * 1000
    with open_sse(history_service.base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id), what="a drainer")
        r.lpush(mailbox(user_id), "first")
        assert stream.next_event().data == "first"
        assert window[0] < r.pttl(history) <= window[1]
        r.pexpire(history, 5000)  # as if most of the TTL had passed
        r.lpush(mailbox(user_id), "second")
        assert stream.next_event().data == "second"
        assert window[0] < r.pttl(history) <= window[1]  # counted from the last message
        assert [entry["d"] for _, entry in r.xrange(history)] == ["first", "second"]


# 409 idempotency_in_progress -----------------------------------------------------------


def publish(base_url: str, body: dict, idempotency_key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        base_url + "/api/publish",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {API_KEYS[0]}",
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=IDEMPOTENCY_WAIT_S + 20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_key_held_by_a_call_still_running_answers_409(base_url, r, user_id):
    """Another worker's first call holds the key ("in-progress", as its claim leaves it)
    for longer than a retry waits: the retry is told so, and queues nothing."""
    body = {"user_id": user_id, "data": "once"}
    assert publish(base_url, body, "warm-up")[0] == 202
    (index,) = r.keys("{push:idempotency:*}:index")  # this API key's scope
    scope = index.removesuffix("index")
    held = scope + hashlib.sha256(b"held").hexdigest()
    r.set(held, "in-progress", px=60_000)
    started = time.monotonic()
    status, answer = publish(base_url, body, "held")
    assert (status, answer["error"]) == (409, "idempotency_in_progress")
    assert time.monotonic() - started >= IDEMPOTENCY_WAIT_S - 1  # it waited for the call
    assert r.llen(mailbox(user_id)) == 1  # the warm-up's only
    r.delete(held)  # the first call failed and gave the key back: a retry queues
    assert publish(base_url, body, "held") == (202, {"queued": 1, "online": {user_id: 0}})
    assert r.llen(mailbox(user_id)) == 2

"""Identity and hostile input, end to end against gunicorn in production mode.

A table of bad inputs, each with its exact answer; then proof that no worker
died and that no other user's mailbox or history moved.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import jwt
import pytest
import redis
from clients import (
    connection_pids,
    drainer_pids,
    open_concurrently,
    open_sse,
    open_ws,
    wait_until,
    ws_frames,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from servers import Gunicorn, service_env
from websockets.exceptions import ConnectionClosed, InvalidStatus

from push.config import DEAD_LETTER_MAX_BYTES
from push.keys import user_keys
from push.redis_server import RedisServer
from push.tickets import ticket_key

pytestmark = pytest.mark.e2e

SECRET = "tests-only-secret-0123456789abcdef"
AUDIENCE = "push-tests"
ISSUER = "shop-backend"
ALLOWED_ORIGIN = "https://app.example"
LIMIT = 3


def mint(sub: object = "alice", *, key: object = SECRET, algorithm: str = "HS256", **claims):
    """A token as a backend would mint it; keyword claims override or (None) remove."""
    payload = {"sub": sub, "exp": int(time.time()) + 300, "aud": AUDIENCE, "iss": ISSUER}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A Redis of this module's own: the table's bystander must survive every test."""
    server = RedisServer(tmp_path_factory.mktemp("secure-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def r(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def secure(redis_server, tmp_path_factory):
    """The service as production runs it: demo off, tokens, origins, a per-user limit."""
    env = service_env(
        redis_server.url,
        PUSH_JWT_SECRET=SECRET,
        PUSH_JWT_AUDIENCE=AUDIENCE,
        PUSH_JWT_ISSUER=ISSUER,
        PUSH_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
        PUSH_MAX_CONNECTIONS_PER_USER=str(LIMIT),
        PUSH_MAX_MESSAGE_BYTES="65536",
        PUSH_TICKET_TTL_S="2",
        PUSH_HEARTBEAT_S="1",
    )
    log = tmp_path_factory.mktemp("secure") / "gunicorn.log"
    server = Gunicorn(log, env, extra_args=["--access-logfile", "-"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bystander(secure, redis_server):
    """Another user with a backlog and a history, which no bad request may touch."""
    client = redis.Redis.from_url(redis_server.url)
    keys = user_keys("bystander", "user_{user_id}_messages")
    for key in (keys.mailbox, keys.history, keys.state):
        client.delete(key)
    client.xadd(keys.history, {"d": "kept", "n": 1})
    client.lpush(keys.mailbox, "waiting 1", "waiting 2")
    snapshot = (client.lrange(keys.mailbox, 0, -1), client.xrange(keys.history))
    yield keys, snapshot
    client.close()


@pytest.fixture
def url(secure, bystander):
    return secure.base_url


def sse_answer(base_url, params=None, headers=None):
    """(status, JSON body or None, headers) of a /stream request that is refused."""
    with open_sse(base_url, params, headers) as stream:
        if stream.status != 200:
            return stream.status, json.loads(stream.read_to_end()), stream.response.headers
        stream.wait_for_comment("connected")
        return 200, None, stream.response.headers


def ws_answer(base_url, params=None, headers=None):
    try:
        with open_ws(base_url, params, headers=headers):
            return 101, None
    except InvalidStatus as refused:
        return refused.response.status_code, json.loads(refused.response.body)


def confused_token():
    """RS256-signed: a service that let the token pick its algorithm could be fooled."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return mint(key=private, algorithm="RS256")


BAD_CREDENTIALS = [
    ("no credential", {}, {}, 401, "missing_token"),
    ("user_id outside demo mode", {"user_id": "alice"}, {}, 401, "missing_token"),
    ("garbage token", {"token": "garbage"}, {}, 401, "malformed_token"),
    ("three dots", {"token": "a.b.c"}, {}, 401, "malformed_token"),
    (
        "wrong secret",
        {"token": mint(key="another-secret-0123456789abcdefgh")},
        {},
        401,
        "bad_signature",
    ),
    ("expired", {"token": mint(exp=int(time.time()) - 60)}, {}, 401, "token_expired"),
    ("not yet valid", {"token": mint(nbf=int(time.time()) + 600)}, {}, 401, "token_not_yet_valid"),
    ("alg none", {"token": mint(key=None, algorithm="none")}, {}, 401, "algorithm_not_allowed"),
    ("HS/RS confusion", {"token": confused_token()}, {}, 401, "algorithm_not_allowed"),
    ("no sub", {"token": mint(sub=None)}, {}, 401, "missing_claim"),
    ("sub not a string", {"token": mint(sub=42)}, {}, 401, "bad_sub"),
    ("sub not a user id", {"token": mint(sub="a b")}, {}, 401, "bad_sub"),
    *[
        (f"sub {name}", {"token": mint(sub=sub)}, {}, 401, "bad_sub")
        for name, sub in [
            ("empty", ""),
            ("of 65 characters", "x" * 65),
            ("with braces", "{x}"),
            ("with a closing brace", "a}"),
            ("a star", "*"),
            ("with a slash", "a/b"),
            ("dot dot", ".."),
            ("with NUL", "a\0b"),
            ("not ASCII", "ünï"),
        ]
    ],
    ("no exp", {"token": mint(exp=None)}, {}, 401, "missing_claim"),
    ("wrong audience", {"token": mint(aud="another-service")}, {}, 401, "wrong_audience"),
    (
        "audience list without ours",
        {"token": mint(aud=["billing-api", "another-service"])},
        {},
        401,
        "wrong_audience",
    ),
    ("no audience while one is set", {"token": mint(aud=None)}, {}, 401, "missing_claim"),
    (
        "ten-year exp",
        {"token": mint(exp=int(time.time()) + 10 * 365 * 86400)},
        {},
        401,
        "token_lifetime_too_long",
    ),
    (
        "two days left to live",
        {"token": mint(exp=int(time.time()) + 2 * 86400)},
        {},
        401,
        "token_lifetime_too_long",
    ),
    ("wrong issuer", {"token": mint(iss="someone-else")}, {}, 401, "wrong_issuer"),
    ("basic auth", {}, {"Authorization": "Basic YWxpY2U6cHc="}, 401, "malformed_authorization"),
    ("empty bearer", {}, {"Authorization": "Bearer "}, 401, "malformed_authorization"),
    ("forged ticket", {"ticket": "A" * 43}, {}, 401, "invalid_ticket"),
    ("malformed ticket", {"ticket": "../../etc"}, {}, 401, "invalid_ticket"),
    ("bad cursor", {"token": mint(), "last_event_id": "1-2-3"}, {}, 400, "invalid_last_event_id"),
    (
        "foreign origin",
        {"token": mint()},
        {"Origin": "https://evil.example"},
        403,
        "origin_not_allowed",
    ),
    ("null origin", {"token": mint()}, {"Origin": "null"}, 403, "origin_not_allowed"),
]


@pytest.mark.parametrize(
    ("params", "headers", "status", "error"),
    [case[1:] for case in BAD_CREDENTIALS],
    ids=[case[0] for case in BAD_CREDENTIALS],
)
def test_bad_credentials_are_refused_before_streaming(url, params, headers, status, error):
    got_status, body, response_headers = sse_answer(url, params, headers)
    assert (got_status, body["error"]) == (status, error)
    assert body["detail"]
    if status == 401:
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
    assert ws_answer(url, params, headers) == (status, body)


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({}, {"Authorization": f"Bearer {mint()}"}),
        ({}, {"Cookie": f"push_token={mint()}"}),
        ({"token": mint()}, {}),
        ({"token": mint()}, {"Origin": ALLOWED_ORIGIN}),
    ],
    ids=["bearer header", "cookie", "query parameter", "allowed origin"],
)
def test_a_valid_token_opens_both_transports(url, params, headers):
    status, _, response_headers = sse_answer(url, params, headers)
    assert status == 200
    if "Origin" in headers:
        assert response_headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        assert response_headers["Access-Control-Allow-Credentials"] == "true"
    assert ws_answer(url, params, headers) == (101, None)


def test_the_header_wins_over_the_cookie_and_the_parameter(url, r):
    headers = {"Authorization": f"Bearer {mint('header-user')}", "Cookie": "push_token=junk"}
    with open_sse(url, {"token": "junk"}, headers) as stream:
        stream.wait_for_comment("connected")
        r.lpush("user_header-user_messages", "for the header's user")
        assert stream.next_event().data == "for the header's user"


def post_ticket(base_url, headers, query=""):
    request = urllib.request.Request(base_url + "/ticket" + query, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()), refused.headers


def test_a_ticket_opens_one_stream_once(url, r):
    status, body, _ = post_ticket(url, {"Authorization": f"Bearer {mint('ticket-user')}"})
    assert status == 200 and body["expires_in"] == 2
    with open_sse(url, {"ticket": body["ticket"]}) as stream:
        stream.wait_for_comment("connected")
        r.lpush("user_ticket-user_messages", "via ticket")
        assert stream.next_event().data == "via ticket"
    assert sse_answer(url, {"ticket": body["ticket"]})[:2] == (
        401,
        {"error": "invalid_ticket", "detail": "the ticket is unknown, used or expired"},
    )


def test_a_ticket_expires(url, r):
    _, body, _ = post_ticket(url, {"Authorization": f"Bearer {mint()}"})
    wait_until(lambda: not r.exists(ticket_key(body["ticket"])), what="the ticket to expire")
    assert ws_answer(url, {"ticket": body["ticket"]})[0] == 401


def test_tickets_are_given_only_for_a_token(url):
    _, body, _ = post_ticket(url, {"Authorization": f"Bearer {mint()}"})
    status, refused, _ = post_ticket(url, {}, f"?ticket={body['ticket']}")
    assert (status, refused["error"]) == (401, "ticket_not_accepted")
    status, refused, _ = post_ticket(url, {"Authorization": f"Bearer {mint(exp=1)}"})
    assert (status, refused["error"]) == (401, "token_expired")
    foreign = {"Authorization": f"Bearer {mint()}", "Origin": "https://evil.example"}
    status, refused, _ = post_ticket(url, foreign)
    assert (status, refused["error"]) == (403, "origin_not_allowed")


def test_an_allowed_origin_may_ask_for_a_ticket_with_its_cookie(url):
    preflight = urllib.request.Request(
        url + "/ticket",
        method="OPTIONS",
        headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    with urllib.request.urlopen(preflight, timeout=10) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    status, body, headers = post_ticket(
        url, {"Cookie": f"push_token={mint()}", "Origin": ALLOWED_ORIGIN}
    )
    assert status == 200 and body["ticket"]
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_the_connection_limit_holds_across_both_workers(url, r):
    token = mint("busy-user")
    clients = []
    try:
        for _ in range(20):  # reopen until the three connections span both workers
            clients = open_concurrently(url, "busy-user", LIMIT, {"token": token})
            wait_until(lambda: r.zcard("{user_busy-user_messages}:presence") == LIMIT)
            if len(connection_pids(r, "busy-user")) == 2:
                break
            for client in clients:
                client.close()
            wait_until(lambda: r.zcard("{user_busy-user_messages}:presence") == 0)
        assert len(connection_pids(r, "busy-user")) == 2, (
            "the connections never spanned both workers"
        )
        status, body, headers = sse_answer(url, {"token": token})
        assert (status, body["error"]) == (429, "too_many_connections")
        assert headers["Retry-After"] == "10"
        assert ws_answer(url, {"token": token})[0] == 429
        clients.pop().close()
        wait_until(lambda: sse_answer(url, {"token": token})[0] == 200, what="a freed place")
    finally:
        for client in clients:
            client.close()


def test_poison_messages_are_dead_lettered_and_the_stream_goes_on(url, r, redis_server):
    raw = redis.Redis.from_url(redis_server.url)
    keys = user_keys("poisoned", "user_{user_id}_messages")
    largest = "L" * 65536
    with (
        open_sse(url, {"token": mint("poisoned")}) as stream,
        open_ws(url, {"token": mint("poisoned")}) as ws,
    ):
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, "poisoned"))
        raw.lpush(keys.mailbox, b"before", b"x" * 65537, b"\xc3\x28 broken", largest, b"after")
        assert [e.data for e in stream.events(3)] == ["before", largest, "after"]
        assert [f["data"] for f in ws_frames(ws, 3)] == ["before", largest, "after"]
    cut = b"[truncated: 65537 bytes] " + b"x" * DEAD_LETTER_MAX_BYTES
    assert raw.lrange(keys.dead, 0, -1) == [b"\xc3\x28 broken", cut]
    raw.close()


BAD_FRAMES = [
    ("binary", b"\x00\x01", 4415),
    ("too large", json.dumps({"ack": "1-0", "pad": "x" * 5000}), 4413),
    ("garbage", "not json {", 4400),
    ("a list", "[1, 2]", 4400),
    ("ack not a string", '{"ack": 5}', 4400),
    ("ack not an id", '{"ack": "yesterday"}', 4400),
    ("unknown shape", '{"subscribe": "bob"}', 4400),
    ("over the library's limit", "x" * 70_000, 1009),
]


@pytest.mark.parametrize(
    ("frame", "code"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES]
)
def test_a_bad_client_frame_closes_with_a_code_and_a_reason(url, r, frame, code):
    user = "framer"
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == code
    assert closed.value.rcvd.reason
    wait_until(lambda: not drainer_pids(r, user), what="the connection to be released")


def test_an_ack_frame_is_accepted(url, r):
    with open_ws(url, {"token": mint("acker")}) as ws:
        wait_until(lambda: drainer_pids(r, "acker"))
        ws.send('{"ack": "1732630000000-0"}')
        r.lpush("user_acker_messages", "still open")
        assert ws_frames(ws, 1)[0]["data"] == "still open"


PAST_2_64 = "99999999999999999999-0"
DEEP_JSON = "[" * 1500 + "]" * 1500

BAD_IDS_OVER_HTTP = [
    ("Last-Event-ID past 2^64", "stream", {"Last-Event-ID": PAST_2_64}, "invalid_last_event_id"),
    (
        "last_event_id sequence past 2^64",
        "stream",
        {"last_event_id": f"0-{2**64}"},
        "invalid_last_event_id",
    ),
    ("ack past 2^64", "ack", json.dumps({"id": PAST_2_64}), "invalid_ack"),
    ("ack sequence past 2^64", "ack", json.dumps({"id": f"1-{2**64}"}), "invalid_ack"),
    ("ack body nested 1,500 deep", "ack", DEEP_JSON, "invalid_ack"),
    ("ack id nested 1,500 deep", "ack", '{"id": ' + DEEP_JSON + "}", "invalid_ack"),
    ("ack body not UTF-8", "ack", b'{"id": "\xc3\x28"}', "invalid_ack"),
]


def post_ack_answer(base_url, body):
    request = urllib.request.Request(
        base_url + "/ack",
        data=body.encode() if isinstance(body, str) else body,
        method="POST",
        headers={"Authorization": f"Bearer {mint()}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.parametrize(
    ("where", "what", "error"),
    [case[1:] for case in BAD_IDS_OVER_HTTP],
    ids=[case[0] for case in BAD_IDS_OVER_HTTP],
)
def test_an_event_id_out_of_range_or_unparsable_json_is_refused_with_400(url, where, what, error):
    if where == "ack":
        status, body = post_ack_answer(url, what)
        assert (status, body["error"]) == (400, error)
        assert body["detail"]
        return
    params, headers = {"token": mint()}, {}
    if "Last-Event-ID" in what:
        headers = what
    else:
        params.update(what)
    status, body, _ = sse_answer(url, params, headers)
    assert (status, body["error"]) == (400, error)
    assert ws_answer(url, params, headers) == (status, body)


BAD_ID_FRAMES = [
    ("ack past 2^64", json.dumps({"ack": PAST_2_64})),
    ("ack sequence past 2^64", json.dumps({"ack": f"1-{2**64}"})),
    ("nested 1,500 deep", DEEP_JSON),
    ("ack nested 1,500 deep", '{"ack": ' + DEEP_JSON + "}"),
]


@pytest.mark.parametrize(
    ("index", "frame"),
    list(enumerate(c[1] for c in BAD_ID_FRAMES)),
    ids=[c[0] for c in BAD_ID_FRAMES],
)
def test_an_ack_out_of_range_or_too_deep_closes_4400_and_the_user_streams_again(
    url, r, index, frame
):
    user = f"id-framer-{index}"  # a user of its own: the previous case's message is not replayed
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4400
    assert closed.value.rcvd.reason
    wait_until(lambda: not drainer_pids(r, user), what="the connection to be released")
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        r.lpush(f"user_{user}_messages", "after the bad frame")
        assert ws_frames(ws, 1)[0]["data"] == "after the bad frame"


def test_no_token_or_ticket_reaches_the_logs(url, secure):
    token = mint("logged")
    _, ticket, _ = post_ticket(url, {"Authorization": f"Bearer {token}"})
    sse_answer(url, {"token": token})
    sse_answer(url, {"ticket": ticket["ticket"]})
    sse_answer(url, {"token": "garbage-secret-value"})
    log = wait_until(lambda: (text := secure.log()).count("GET /stream") >= 3 and text)
    assert token not in log
    assert ticket["ticket"] not in log
    assert "garbage-secret-value" not in log
    assert "token=[redacted]" in log


def test_after_the_table_every_worker_answers_and_nobody_else_was_touched(url, r, bystander):
    keys, (mailbox, history) = bystander
    assert r.lrange(keys.mailbox, 0, -1) == [m.decode() for m in mailbox]
    assert [(i, f) for i, f in r.xrange(keys.history)] == [
        (i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in history
    ]
    # Every worker still serves: open connections until both have answered.
    wait_until(lambda: len(_serving_pids(url, r)) == 2, what="both workers to serve")


def _serving_pids(url, r):
    users = [f"prober{i}" for i in range(8)]
    clients = [open_ws(url, {"token": mint(user)}) for user in users]
    try:
        wait_until(lambda: all(drainer_pids(r, user) for user in users))
        return set().union(*(drainer_pids(r, user) for user in users))
    finally:
        for client in clients:
            client.close()


@pytest.mark.browser
def test_a_browser_event_source_opens_with_a_ticket(url, r, page):
    """The flow the README recommends: POST /ticket with the token, then EventSource."""
    page.goto(url + "/static/demo.css")  # any page of the service's own origin
    ticket = page.evaluate(
        """async (token) => {
            const answer = await fetch("/ticket", {
                method: "POST", headers: {Authorization: `Bearer ${token}`}});
            const {ticket} = await answer.json();
            window.received = [];
            const source = new EventSource(`/stream?ticket=${ticket}`);
            source.onmessage = (event) => window.received.push([event.lastEventId, event.data]);
            await new Promise((resolve, reject) => {
                source.onopen = resolve;
                source.onerror = () => reject(new Error("EventSource failed"));
            });
            return ticket;
        }""",
        mint("browser-user"),
    )
    assert not r.exists(ticket_key(ticket))  # taken: a copied URL opens nothing
    r.lpush("user_browser-user_messages", "to the browser")
    page.wait_for_function("window.received.length === 1")
    event_id, data = page.evaluate("window.received[0]")
    assert data == "to the browser"
    assert re.fullmatch(r"\d+-\d+", event_id)

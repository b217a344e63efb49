"""Identity and hostile input, end to end against gunicorn in production mode.

A table of bad inputs, each with its exact answer; then proof that no worker
died and that no other user's mailbox or history moved.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

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
from servers import Gunicorn, own_redis, service_env
from websockets.exceptions import ConnectionClosed, InvalidStatus

from push.identity.tickets import ticket_key
from push.model.keys import user_keys
from push.model.settings import DEAD_LETTER_MAX_BYTES
from push.service import create_app

pytestmark = pytest.mark.e2e

SECRET = "tests-only-secret-0123456789abcdef"
AUDIENCE = "push-tests"
ISSUER = "shop-backend"
ALLOWED_ORIGIN = "https://app.example"
LIMIT = 3
API_KEY = "tests-only-api-key-0123456789"
#: PUSH_BODY_TIMEOUT_S of the service under test: short, so a trickled body is cut quickly.
BODY_TIMEOUT_S = 2


def mint(sub: object = "alice", *, key: object = SECRET, algorithm: str = "HS256", **claims):
    """A token as a backend would mint it; keyword claims override or (None) remove."""
    payload = {"sub": sub, "exp": int(time.time()) + 3600, "aud": AUDIENCE, "iss": ISSUER}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm)


#: A Redis of this module's own: the table's bystander must survive every test.
redis_server, r = own_redis("secure")


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
        PUSH_API_KEY=API_KEY,
        PUSH_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
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


def own_origin(base_url, scheme="http", port=None):
    """The origin of a page of the service's own host, with `scheme` and `port` changed."""
    parts = urlsplit(base_url)
    return f"{scheme}://{parts.hostname}:{parts.port if port is None else port}"


def cookie(user="alice"):
    return f"push_token={mint(user)}"


#: (name, query, headers (`{own}`: the service's origin), status, error): Origin and
#: Sec-Fetch-Site checks on both transports.
BAD_ORIGINS = [
    (
        "cookie from a cross-site page without Origin",
        {},
        {"Cookie": cookie(), "Sec-Fetch-Site": "cross-site"},
        403,
        "origin_not_allowed",
    ),
    (
        "cookie from a sibling site without Origin",
        {},
        {"Cookie": cookie(), "Sec-Fetch-Site": "same-site"},
        403,
        "origin_not_allowed",
    ),
    (
        "cookie from a sibling site with a foreign Origin",
        {},
        {"Cookie": cookie(), "Sec-Fetch-Site": "same-site", "Origin": "https://evil.example"},
        403,
        "origin_not_allowed",
    ),
    (
        "own host over https",
        {"token": mint()},
        {"Origin": "https://{own}"},
        403,
        "origin_not_allowed",
    ),
    (
        "own host on another port",
        {"token": mint()},
        {"Origin": "http://{host}:1"},
        403,
        "origin_not_allowed",
    ),
    (
        "own host with a userinfo trick",
        {"token": mint()},
        {"Origin": "http://{own}@evil.example"},
        403,
        "origin_not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("origin", "status"), [("https://push.example.com", 200), ("http://push.example.com", 403)]
)
def test_behind_a_trusted_proxy_the_own_origin_has_the_forwarded_scheme(
    redis_server, origin, status
):
    """The page is https://push.example.com; nginx speaks http to the service and says
    so in X-Forwarded-Proto. The http:// origin of the same host is another origin."""
    app = create_app({"PUSH_DEMO": True, "REDIS_URL": redis_server.url, "PUSH_TRUSTED_PROXIES": 1})
    headers = {
        "Origin": origin,
        "X-Forwarded-Host": "push.example.com",
        "X-Forwarded-Proto": "https",
    }
    answer = app.test_client().post("/ticket?user_id=42", headers=headers)
    assert answer.status_code == status


def _fill(headers, base_url):
    parts = urlsplit(base_url)
    return {
        name: value.format(own=parts.netloc, host=parts.hostname) for name, value in headers.items()
    }


@pytest.mark.parametrize(
    ("params", "headers", "status", "error"),
    [case[1:] for case in BAD_ORIGINS],
    ids=[case[0] for case in BAD_ORIGINS],
)
def test_a_foreign_page_is_refused_on_both_transports(url, params, headers, status, error):
    headers = _fill(headers, url)
    got_status, body, _ = sse_answer(url, params, headers)
    assert (got_status, body["error"]) == (status, error)
    assert body["detail"]
    assert ws_answer(url, params, headers) == (status, body)


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        # A user a row, so that no row waits for another's connections to be released.
        ({}, {"Cookie": cookie("passer1"), "Sec-Fetch-Site": "same-origin"}),
        ({}, {"Cookie": cookie("passer2"), "Sec-Fetch-Site": "none"}),
        ({}, {"Cookie": cookie("passer3")}),
        (
            {},
            {"Cookie": cookie("passer4"), "Sec-Fetch-Site": "same-site", "Origin": ALLOWED_ORIGIN},
        ),
        (
            {},
            {
                "Cookie": cookie("passer5"),
                "Sec-Fetch-Site": "same-origin",
                "Origin": "http://{own}",
            },
        ),
        ({"token": mint("passer6")}, {"Sec-Fetch-Site": "cross-site"}),
        ({}, {"Authorization": f"Bearer {mint('passer7')}", "Sec-Fetch-Site": "cross-site"}),
    ],
    ids=[
        "cookie same-origin (EventSource sends no Origin)",
        "cookie opened by the user",
        "cookie without Sec-Fetch-Site (curl, older browsers)",
        "cookie from an allowed sibling",
        "cookie with the own origin",
        "query token cross-site",
        "bearer header cross-site",
    ],
)
def test_a_page_of_an_allowed_origin_or_a_non_cookie_credential_passes(url, params, headers):
    headers = _fill(headers, url)
    assert sse_answer(url, params, headers)[0] == 200
    assert ws_answer(url, params, headers) == (101, None)


def test_cookie_requests_from_a_cross_site_page_get_no_ticket_and_no_ack(url):
    headers = {"Cookie": cookie(), "Sec-Fetch-Site": "cross-site"}
    status, body, _ = post_ticket(url, headers)
    assert (status, body["error"]) == (403, "origin_not_allowed")
    assert post_ticket(url, {"Cookie": cookie(), "Sec-Fetch-Site": "same-origin"})[0] == 200
    status, body, *_ = exchange(url, "/ack", {**headers, "Content-Type": "application/json"})
    assert (status, body["error"]) == (403, "origin_not_allowed")


def exchange(base_url, path, headers, body=b"", feed=None, timeout=10.0):
    """POST with a raw socket: `body` whole, or `feed(sock, stop)` pushing it from a thread
    of its own while the answer is read. (status, JSON body, seconds to the answer, whether
    the service closed the connection after answering)."""
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if feed is None:
        lines.append(f"Content-Length: {len(body)}")
    stop = threading.Event()
    started = time.monotonic()
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    feeder = threading.Thread(target=_feed, args=(feed, sock, stop), daemon=True)
    if feed is not None:
        feeder.start()
    try:
        response = http.client.HTTPResponse(sock)
        response.begin()
        elapsed = time.monotonic() - started
        answer = json.loads(response.read())
        closed = response.will_close or _closed(sock)
        return response.status, answer, elapsed, closed
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout)
        sock.close()


def _feed(feed, sock, stop):
    with contextlib.suppress(OSError):  # the service closed: what a refusal does
        feed(sock, stop)


def _closed(sock):
    try:
        return bool(select.select([sock], [], [], 3)[0]) and sock.recv(1) == b""
    except OSError:
        return True


def chunked(chunks):
    """A feeder sending `chunks` with chunked transfer encoding, then the last chunk."""

    def feed(sock, stop):
        for chunk in chunks:
            if stop.is_set():
                return
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")

    return feed


def trickled(total, every_s=0.5):
    """A feeder sending `total` bytes one at a time, `every_s` apart: a slow-body attack."""

    def feed(sock, stop):
        for _ in range(total):
            sock.sendall(b" ")
            if stop.wait(every_s):
                return

    return feed


def endless(sent):
    """A feeder pushing 64 KiB blocks until the service closes; `sent[0]` counts bytes."""

    def feed(sock, stop):
        block = b"x" * 65536
        while not stop.is_set():
            sock.sendall(block)
            sent[0] += len(block)

    return feed


def truncated(sock, stop):
    """A feeder whose body ends (the client shuts its side) before its Content-Length."""
    sock.sendall(b" " * 10)
    sock.shutdown(socket.SHUT_WR)


def bearer(user="body-user"):
    return {"Authorization": f"Bearer {mint(user)}", "Content-Type": "application/json"}


API = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
#: A publish body past the API's limit (6 x 65536 + 84096 bytes) whose message is small.
SPACIOUS_PUBLISH = b'{"user_id": "spacious", "data": "small"' + b" " * 600_000 + b"}"
CHUNKED = {"Transfer-Encoding": "chunked"}

#: (name, path, headers, feeder or None, status, error): bodies too large or too slow.
BAD_BODIES = [
    *[
        (
            f"{path} chunked past 4 KiB",
            path,
            {**bearer(), **CHUNKED},
            chunked([b" " * 1024] * 8),
            413,
            "body_too_large",
        )
        for path in ("/ack", "/ticket")
    ],
    *[
        (
            f"{path} trickled at 2 bytes a second",
            path,
            {**bearer(), "Content-Length": "100"},
            trickled(100),
            408,
            "body_timeout",
        )
        for path in ("/ack", "/ticket")
    ],
    (
        "/ack ending before its length",
        "/ack",
        {**bearer(), "Content-Length": "100"},
        truncated,
        400,
        "body_incomplete",
    ),
    (
        "/ack declaring 150 MB",
        "/ack",
        {**bearer(), "Content-Length": str(150 * 2**20)},
        None,
        413,
        "body_too_large",
    ),
    (
        "publish chunked past the API's limit",
        "/api/publish",
        {**API, **CHUNKED},
        chunked([SPACIOUS_PUBLISH[i : i + 16384] for i in range(0, len(SPACIOUS_PUBLISH), 16384)]),
        413,
        "body_too_large",
    ),
    (
        "publish declaring 1 MB",
        "/api/publish",
        {**API, "Content-Length": str(2**20)},
        None,
        413,
        "body_too_large",
    ),
    (
        "publish trickled",
        "/api/publish",
        {**API, "Content-Length": "100"},
        trickled(100),
        408,
        "body_timeout",
    ),
]


@pytest.mark.parametrize(
    ("path", "headers", "feed", "status", "error"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_a_body_too_large_or_too_slow_is_refused_and_the_connection_closed(
    url, r, path, headers, feed, status, error
):
    if feed is None:  # a declared length: the head alone is refused, no byte read
        feed = endless([0])
    got_status, body, elapsed, closed = exchange(url, path, headers, feed=feed)
    assert (got_status, body["error"]) == (status, error)
    assert body["detail"]
    assert closed, "the rest of the body would be read for nothing"
    if status == 408:
        assert BODY_TIMEOUT_S - 0.5 < elapsed < BODY_TIMEOUT_S + 3
    else:
        assert elapsed < 3
    assert r.llen("user_spacious_messages") == 0  # a refused publish queued nothing
    # The worker goes on answering.
    assert post_ticket(url, {"Authorization": f"Bearer {mint()}"})[0] == 200


def _worker_rss_kb(server):
    total = 0
    for pid in server.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return total


def test_a_huge_body_is_refused_unread_and_no_worker_grows(url, secure):
    """A 150 MB body pushed as fast as the client can: 413 from its head, the connection
    closed after it, so the worker reads (and holds) next to nothing of it."""
    before = _worker_rss_kb(secure)
    sent = [0]
    headers = {**bearer(), "Content-Length": str(150 * 2**20)}
    for _ in range(3):
        status, body, elapsed, closed = exchange(url, "/ack", headers, feed=endless(sent))
        assert (status, body["error"], closed) == (413, "body_too_large", True)
        assert elapsed < 3
    assert sent[0] < 3 * 30 * 2**20, "the service read the body it refused"
    assert _worker_rss_kb(secure) - before < 20 * 1024


def test_a_body_within_the_limits_still_works(url, r):
    status, body, _, _ = exchange(url, "/ack", bearer(), b'{"id": "1-0"}')
    assert status == 200 and "acknowledged" in body
    at_the_limit = b'{"id": "1-0"}'.ljust(4096)
    assert exchange(url, "/ack", bearer(), at_the_limit)[0] == 200
    status, body, _, _ = exchange(url, "/ack", bearer(), at_the_limit + b" ")
    assert (status, body["error"]) == (413, "body_too_large")
    publish = json.dumps({"user_id": "roomy", "data": "x" * 65536}).encode()
    status, body, _, _ = exchange(url, "/api/publish", API, publish)
    assert (status, body["queued"]) == (202, 1)
    assert r.llen("user_roomy_messages") == 1
    r.delete("user_roomy_messages")


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


@pytest.mark.browser
def test_a_browser_streams_with_its_cookie_from_its_own_origin_only(url, r, page):
    """What Chromium really sends: a same-origin EventSource carries the cookie with
    `Sec-Fetch-Site: same-origin` and no Origin (it passes); a page of another site that
    navigates to /stream makes the browser attach the cookie with `cross-site` (refused)."""
    own = urlsplit(url)
    page.context.add_cookies(
        [{"name": "push_token", "value": mint("cookie-browser"), "url": url, "sameSite": "Lax"}]
    )
    page.goto(url + "/static/demo.css")
    with page.expect_request(lambda request: "/stream" in request.url) as opened:
        page.evaluate(
            """() => new Promise((resolve, reject) => {
                window.received = [];
                const source = new EventSource("/stream");
                source.onmessage = (event) => window.received.push(event.data);
                source.onopen = resolve;
                source.onerror = () => reject(new Error("EventSource failed"));
            })"""
        )
    sent = opened.value.all_headers()
    assert sent.get("sec-fetch-site") == "same-origin" and "origin" not in sent
    r.lpush("user_cookie-browser_messages", "by cookie")
    page.wait_for_function("window.received.length === 1")
    assert page.evaluate("window.received[0]") == "by cookie"
    # Another site: localhost is not 127.0.0.1 to a browser.
    page.goto(f"http://localhost:{own.port}/static/demo.css")
    with page.expect_response(lambda response: "/stream" in response.url) as answer:
        page.evaluate(f"location.href = 'http://127.0.0.1:{own.port}/stream'")
    response = answer.value
    assert response.request.all_headers().get("sec-fetch-site") == "cross-site"
    assert response.status == 403
    assert response.json()["error"] == "origin_not_allowed"

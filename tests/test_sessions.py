"""Sessions that end, end to end against gunicorn with tokens (2 workers, real Redis):
a stream lives no longer than its token, a WebSocket renews in band, and a user can be
disconnected everywhere at once, after which the tokens issued before are refused."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import jwt
import pytest
from clients import (
    SseStream,
    closed_count,
    connection_pids,
    drainer_pids,
    open_concurrently,
    open_sse,
    open_ws,
    wait_until,
    ws_frames,
)
from servers import Gunicorn, own_redis, service_env
from websockets.exceptions import ConnectionClosed, InvalidStatus

from push import disconnect

pytestmark = pytest.mark.e2e

SECRET = "sessions-test-secret-0123456789abcdef"
API_KEY = "sessions-api-key-0123456789"
#: Seconds a test token lives when it is meant to expire during the test.
SHORT_S = 2


def mint(sub: str = "alice", lifetime_s: float = 300, **claims) -> str:
    """A token as a backend mints it: `iat` now (to the millisecond), `exp` after
    `lifetime_s`; keyword claims override or (None) remove."""
    now = time.time()
    payload = {"sub": sub, "iat": round(now, 3), "exp": int(now + lifetime_s)}
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, SECRET, "HS256")


redis_server, r = own_redis("sessions")


@pytest.fixture(scope="module")
def service(redis_server, tmp_path_factory):
    """Production mode (tokens, no demo), no clock skew allowed, the API on."""
    env = service_env(
        redis_server.url,
        PUSH_JWT_SECRET=SECRET,
        PUSH_JWT_LEEWAY_S="0",
        PUSH_API_KEY=API_KEY,
        PUSH_HEARTBEAT_S="1",
        PUSH_WS_PING_S="1",
        PUSH_REVOCATION_TTL_S="600",
    )
    server = Gunicorn(tmp_path_factory.mktemp("sessions") / "gunicorn.log", env).start()
    yield server
    server.stop()


@pytest.fixture
def url(service):
    return service.base_url


def call(base_url: str, path: str, body: bytes | None = None, key: str | None = API_KEY):
    """(status, JSON answer) of a POST to the API."""
    request = urllib.request.Request(base_url + path, data=body or b"", method="POST")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def last_event(stream: SseStream, timeout: float):
    """The stream's next event, which must be its last: the server then closes it."""
    event = stream.next_event(timeout=timeout)
    with pytest.raises(ConnectionError):
        stream.next_event(timeout=5)
    return event


# --- A stream lives no longer than its token -----------------------------------------


def test_an_sse_stream_ends_when_its_token_expires_and_resumes_with_a_fresh_one(url, r):
    before = closed_count(url, "sse", "token_expired")
    opened = time.time()
    with open_sse(url, {"token": mint("expiring", SHORT_S)}) as stream:
        stream.wait_for_comment("connected")
        r.lpush("user_expiring_messages", "before")
        seen = stream.next_event()
        assert seen.data == "before"
        expired = last_event(stream, SHORT_S + 3)
        ended = time.time()
    assert (expired.event, json.loads(expired.data)) == ("expired", {"error": "token_expired"})
    assert ended - opened < SHORT_S + 2.5  # at exp (whole seconds), not later
    r.lpush("user_expiring_messages", "after")
    headers = {"Last-Event-ID": seen.id}
    with open_sse(url, {"token": mint("expiring")}, headers) as stream:
        assert stream.next_event().data == "after"  # nothing lost: resumed by id
    wait_until(lambda: closed_count(url, "sse", "token_expired") == before + 1)


def test_a_websocket_closes_4401_when_its_token_expires(url, r):
    before = closed_count(url, "ws", "token_expired")
    with open_ws(url, {"token": mint("expiring-ws", SHORT_S)}) as ws:
        wait_until(lambda: drainer_pids(r, "expiring-ws"))
        r.lpush("user_expiring-ws_messages", "before")
        assert ws_frames(ws, 1)[0]["data"] == "before"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=SHORT_S + 3)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")
    wait_until(lambda: closed_count(url, "ws", "token_expired") == before + 1)


def test_a_ticket_stream_ends_with_the_token_that_bought_it(url):
    token = mint("ticketed", SHORT_S)
    request = urllib.request.Request(
        url + "/ticket", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        ticket = json.loads(response.read())["ticket"]
    with open_sse(url, {"ticket": ticket}) as stream:
        stream.wait_for_comment("connected")
        assert last_event(stream, SHORT_S + 3).event == "expired"


def test_a_cookie_stream_ends_when_its_token_expires(url):
    cookie = {"Cookie": f"push_token={mint('cookied', SHORT_S)}"}
    with open_sse(url, headers=cookie) as stream:
        stream.wait_for_comment("connected")
        assert last_event(stream, SHORT_S + 3).event == "expired"


# --- Renewing in band on a WebSocket ----------------------------------------------


def test_a_websocket_renewed_in_band_outlives_its_first_token(url, r):
    with open_ws(url, {"token": mint("renewing", SHORT_S)}) as ws:
        wait_until(lambda: drainer_pids(r, "renewing"))
        ws.send(json.dumps({"token": mint("renewing", 60)}))
        time.sleep(SHORT_S + 1.5)  # the first token's exp passes: nothing may happen
        r.lpush("user_renewing_messages", "still here")
        assert ws_frames(ws, 1)[0]["data"] == "still here"


RENEWALS = [
    ("another user", lambda: mint("mallory"), 4403, "the token names another user"),
    ("expired", lambda: mint("renewer", -30), 4401, "token_expired"),
    ("wrong signature", lambda: mint("renewer")[:-4] + "AAAA", 4401, "bad_signature"),
    ("garbage", lambda: "not.a.jwt", 4401, "malformed_token"),
    ("not a string", lambda: 42, 4400, None),
    ("oversize", lambda: "x" * 5000, 4413, None),
]


@pytest.mark.parametrize(
    ("token", "code", "reason"), [c[1:] for c in RENEWALS], ids=[c[0] for c in RENEWALS]
)
def test_a_bad_renewal_closes_with_a_code_naming_the_check(url, r, token, code, reason):
    with open_ws(url, {"token": mint("renewer")}) as ws:
        wait_until(lambda: drainer_pids(r, "renewer"))
        ws.send(json.dumps({"token": token()}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == code
    assert closed.value.rcvd.reason == reason if reason else closed.value.rcvd.reason
    wait_until(lambda: not drainer_pids(r, "renewer"), what="the connection to be released")


# --- Revoking a user ----------------------------------------------------------------


def test_a_disconnect_closes_every_connection_on_both_workers_within_a_second(url, r):
    user = "banned"
    old_token = mint(user, iat=int(time.time()) - 60)
    clients = []
    for _ in range(3):
        clients += open_concurrently(url, user, 6, {"token": old_token})
        if len(connection_pids(r, user)) == 2:
            break
    try:
        assert len(connection_pids(r, user)) == 2, "the tabs never spanned both workers"
        wait_until(lambda: r.zcard(f"{{user_{user}_messages}}:presence") == len(clients))
        before = closed_count(url, "sse", "revoked") + closed_count(url, "ws", "revoked")
        asked = time.monotonic()
        status, answer = call(url, f"/api/users/{user}/disconnect", b'{"reason": "banned: spam"}')
        assert (status, answer) == (200, {"disconnected": len(clients)})
        for client in clients:
            if isinstance(client, SseStream):
                event = last_event(client, 1)
                assert event.event == "revoked"
                assert json.loads(event.data) == {"error": "revoked", "reason": "banned: spam"}
            else:
                with pytest.raises(ConnectionClosed) as closed:
                    client.recv(timeout=1)
                assert closed.value.rcvd.code == 4403
                assert closed.value.rcvd.reason == "revoked: banned: spam"
        assert time.monotonic() - asked < 1.5
    finally:
        for client in clients:
            client.close()
    wait_until(
        lambda: (
            (closed_count(url, "sse", "revoked") + closed_count(url, "ws", "revoked"))
            == before + len(clients)
        )
    )
    # From now on the tokens issued before are refused, also without iat; later ones work.
    for token in (old_token, mint(user, iat=None)):
        with open_sse(url, {"token": token}) as stream:
            assert stream.status == 401
            assert json.loads(stream.read_to_end())["error"] == "token_revoked"
        with pytest.raises(InvalidStatus) as refused:
            open_ws(url, {"token": token})
        assert refused.value.response.status_code == 401
    with open_sse(url, {"token": mint(user)}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(f"user_{user}_messages", "welcome back")
        assert stream.next_event().data == "welcome back"


def test_a_renewal_with_a_token_from_before_a_revocation_is_refused(url, r):
    user = "renewed-after-ban"
    old_token = mint(user, iat=round(time.time() - 1, 3))
    call(url, f"/api/users/{user}/disconnect")
    with open_ws(url, {"token": mint(user)}) as ws:
        wait_until(lambda: drainer_pids(r, user))
        ws.send(json.dumps({"token": old_token}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token_revoked")


DISCONNECT_CALLS = [
    ("unknown user", "nobody-here", None, API_KEY, 200, None),
    ("bad id", "a%20b", None, API_KEY, 400, "invalid_user_id"),
    ("no key", "someone", None, None, 401, "unauthorized"),
    ("wrong key", "someone", None, "wrong-key-0123456789abc", 401, "unauthorized"),
    ("not an object", "someone", b"[1]", API_KEY, 422, "invalid_request"),
    ("an extra member", "someone", b'{"reason": "x", "and": 1}', API_KEY, 422, "invalid_request"),
    (
        "reason too long",
        "someone",
        json.dumps({"reason": "x" * 201}).encode(),
        API_KEY,
        422,
        "invalid_reason",
    ),
    ("reason with a line break", "someone", b'{"reason": "a\\nb"}', API_KEY, 422, "invalid_reason"),
    ("reason not text", "someone", b'{"reason": 5}', API_KEY, 422, "invalid_reason"),
]


@pytest.mark.parametrize(
    ("user", "body", "key", "status", "error"),
    [c[1:] for c in DISCONNECT_CALLS],
    ids=[c[0] for c in DISCONNECT_CALLS],
)
def test_bad_disconnect_calls_get_a_clear_answer(url, user, body, key, status, error):
    answer_status, answer = call(url, f"/api/users/{user}/disconnect", body, key)
    assert answer_status == status
    if error is None:
        assert answer == {"disconnected": 0}
    else:
        assert answer["error"] == error


def test_disconnect_from_python_says_how_many_were_open(url, r):
    with open_sse(url, {"token": mint("pythonic", iat=1)}) as stream:
        stream.wait_for_comment("connected")
        assert disconnect(r, "pythonic", "from a script") == 1
        event = last_event(stream, 1)
    assert json.loads(event.data)["reason"] == "from a script"


# --- push.js renews, in headless Chromium -------------------------------------------

PAGE_SCRIPT = """async ({ transport, user, staticToken }) => {
    const { connect } = await import("/static/push.js");
    window.received = [];
    window.states = [];
    const options = { transport, user };
    if (staticToken) options.token = staticToken;
    else options.getToken = () => window.mintToken();
    window.push = connect(options);
    window.push.on("message", ({ id, data }) => window.received.push(data));
    window.push.on("status", ({ state }) => window.states.push(state));
}"""


def start_page(page, url, transport, user, mint_token=None, static_token=None):
    """A page of the service's own origin running push.js with `getToken` (a token that
    `mint_token` makes for each call) or a static token."""
    if mint_token is not None:
        page.expose_function("mintToken", mint_token)
    page.goto(url + "/static/demo.css")
    page.evaluate(PAGE_SCRIPT, {"transport": transport, "user": user, "staticToken": static_token})


def page_state(page) -> str:
    return page.evaluate("window.push.state")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_page_whose_tokens_live_3_s_keeps_receiving_across_expiries(page, url, r, transport):
    user = f"renewing-page-{transport}"
    start_page(page, url, transport, user, mint_token=lambda: mint(user, 3))
    wait_until(lambda: page_state(page) == "open", what="the page to connect")
    sent = []
    deadline = time.monotonic() + 10  # three tokens and more
    while time.monotonic() < deadline:
        sent.append(f"m{len(sent)}")
        r.lpush(f"user_{user}_messages", sent[-1])
        time.sleep(0.1)
    wait_until(
        lambda: len(page.evaluate("window.received")) >= len(sent), timeout=15, what="every message"
    )
    assert page.evaluate("window.received") == sent  # nothing lost, nothing shown twice
    assert page_state(page) == "open"
    assert "unauthorized" not in page.evaluate("window.states")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_disconnected_users_page_goes_to_unauthorized(page, url, r, transport):
    user = f"banned-page-{transport}"
    issued = time.time() - 1
    # The site keeps handing out the session's token from before the ban (iat unchanged).
    start_page(page, url, transport, user, mint_token=lambda: mint(user, 60, iat=issued))
    wait_until(lambda: page_state(page) == "open", what="the page to connect")
    assert call(url, f"/api/users/{user}/disconnect")[0] == 200
    wait_until(lambda: page_state(page) == "unauthorized", timeout=15, what="unauthorized")
    assert page.evaluate("window.push.authFailures") == 3  # a fresh token, twice, then stop
    wait_until(lambda: r.zcard(f"{{user_{user}_messages}}:presence") == 0, what="no lease left")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_static_token_works_until_it_expires_then_unauthorized(page, url, r, transport):
    user = f"static-page-{transport}"
    start_page(page, url, transport, user, static_token=mint(user, SHORT_S))
    wait_until(lambda: page_state(page) == "open", what="the page to connect")
    r.lpush(f"user_{user}_messages", "while valid")
    wait_until(lambda: page.evaluate("window.received") == ["while valid"])
    wait_until(lambda: page_state(page) == "unauthorized", timeout=SHORT_S + 5)
    # Without getToken there is nothing to retry with: stopped at the first refusal.
    assert page.evaluate("window.push.authFailures") == 1
    wait_until(lambda: r.zcard(f"{{user_{user}_messages}}:presence") == 0, what="no lease left")


@pytest.mark.browser
def test_a_refused_websocket_handshake_retries_websocket_instead_of_falling_back(page, url, r):
    """A 429 (the user at its connection limit) is told apart from a broken upgrade: the
    page waits and tries WebSocket again, rather than switching to SSE for good."""
    user = "crowded"
    token = mint(user)
    crowd = [open_ws(url, {"token": token}) for _ in range(20)]  # PUSH_MAX_CONNECTIONS_PER_USER
    try:
        start_page(page, url, "auto", user, mint_token=lambda: mint(user))
        # Refused, diagnosed (429), backing off: a retry scheduled, no fallback to SSE.
        wait_until(lambda: page.evaluate("window.push.attempt") >= 1, what="a retry")
        assert page_state(page) == "connecting"
        assert page.evaluate("window.push.transport") == "auto"
    finally:
        for client in crowd:
            client.close()
    wait_until(lambda: page_state(page) == "open", timeout=20, what="the page to connect")
    assert page.evaluate("window.push.usedTransport") == "ws"
    assert page.evaluate("window.push.transport") == "auto"


def get(url: str):
    """(status, JSON answer) of a plain GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_a_websocket_request_without_an_upgrade_says_it_would_be_accepted(url, r):
    """What push.js asks when a handshake failed: 426 when only the upgrade is missing,
    and the answer a handshake would have had otherwise."""
    status, answer = get(f"{url}/ws?token={mint('prober')}")
    assert (status, answer["error"]) == (426, "upgrade_required")
    assert r.zcard("{user_prober_messages}:presence") == 0  # the probe's lease is given back
    assert get(f"{url}/ws?token=expired.or.wrong")[0] == 401
    issued = time.time() - 1
    assert disconnect(r, "prober") == 0
    status, answer = get(f"{url}/ws?token={mint('prober', iat=issued)}")
    assert (status, answer["error"]) == (401, "token_revoked")

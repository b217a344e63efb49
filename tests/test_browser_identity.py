"""push.js and the identity it streams with, against gunicorn in production mode (tokens,
no demo) with its access log on: a token never travels in a URL, a WebSocket opened with a
ticket lives and renews like one opened with its token, and on a shared browser each user
resumes from their own cursor."""

from __future__ import annotations

import json
import time
import urllib.request

import jwt
import pytest
from clients import open_sse, open_ws, wait_until, ws_frames
from playwright.sync_api import Browser
from servers import Gunicorn, own_redis, service_env
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.e2e

SECRET = "identity-test-secret-0123456789abcdef"
API_KEY = "identity-api-key-0123456789"
#: Seconds a test token lives when it is meant to expire during the test.
SHORT_S = 2


def mint(sub: str, lifetime_s: float = 300) -> str:
    now = time.time()
    claims = {"sub": sub, "iat": round(now, 3), "exp": int(now + lifetime_s)}
    return jwt.encode(claims, SECRET, "HS256")


redis_server, r = own_redis("identity")


@pytest.fixture(scope="module")
def service(redis_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("identity")
    env = service_env(
        redis_server.url,
        PUSH_JWT_SECRET=SECRET,
        PUSH_JWT_LEEWAY_S="0",
        PUSH_API_KEY=API_KEY,
        PUSH_HEARTBEAT_S="1",
        PUSH_WS_PING_S="1",
    )
    access_log = folder / "access.log"
    server = Gunicorn(
        folder / "gunicorn.log", env, extra_args=["--access-logfile", str(access_log)]
    )
    server.access_log = access_log
    yield server.start()
    server.stop()


@pytest.fixture
def url(service):
    return service.base_url


def post_ticket(url: str, token: str) -> str:
    request = urllib.request.Request(
        url + "/ticket", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["ticket"]


def receipts(url: str, user: str) -> dict:
    request = urllib.request.Request(
        f"{url}/api/users/{user}/receipts", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# --- The hello: whom the service streams for ------------------------------------------


def test_an_sse_stream_asked_for_a_hello_names_its_user_before_any_message(url, r):
    with open_sse(url, {"ticket": post_ticket(url, mint("greeted")), "hello": "1"}) as stream:
        hello = stream.next_event()
        assert (hello.event, json.loads(hello.data), hello.id) == (
            "hello",
            {"user": "greeted"},
            None,
        )
        r.lpush("user_greeted_messages", "after the hello")
        assert stream.next_event().data == "after the hello"


def test_a_websocket_asked_for_a_hello_names_its_user_in_its_first_frame(url, r):
    with open_ws(url, {"ticket": post_ticket(url, mint("greeted-ws")), "hello": "1"}) as ws:
        assert ws_frames(ws, 1) == [{"hello": True, "user": "greeted-ws"}]
        r.lpush("user_greeted-ws_messages", "after the hello")
        assert ws_frames(ws, 1)[0]["data"] == "after the hello"


def test_a_stream_not_asked_for_a_hello_gets_none(url, r):
    with open_ws(url, {"ticket": post_ticket(url, mint("plain-ws"))}) as ws:
        r.lpush("user_plain-ws_messages", "first")
        (frame,) = ws_frames(ws, 1)
        assert (sorted(frame), frame["data"]) == (["data", "id"], "first")


# --- A WebSocket opened with a ticket --------------------------------------------------


def test_a_websocket_opened_with_a_ticket_ends_with_the_token_that_bought_it(url, r):
    with open_ws(url, {"ticket": post_ticket(url, mint("ticket-ws", SHORT_S))}) as ws:
        r.lpush("user_ticket-ws_messages", "before")
        assert ws_frames(ws, 1)[0]["data"] == "before"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=SHORT_S + 3)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "token expired")


def test_a_websocket_opened_with_a_ticket_renews_in_band(url, r):
    first = mint("ticket-renewing", SHORT_S)
    expires = jwt.decode(first, SECRET, algorithms=["HS256"])["exp"]
    with open_ws(url, {"ticket": post_ticket(url, first)}) as ws:
        ws.send(json.dumps({"token": mint("ticket-renewing", 60)}))
        wait_until(lambda: time.time() > expires + 1, timeout=SHORT_S + 3, what="first exp")
        r.lpush("user_ticket-renewing_messages", "still here")
        assert ws_frames(ws, 1)[0]["data"] == "still here"


def test_a_websocket_opened_with_a_ticket_refuses_a_renewal_for_another_user(url):
    with open_ws(url, {"ticket": post_ticket(url, mint("ticket-owner"))}) as ws:
        ws.send(json.dumps({"token": mint("mallory")}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4403,
        "the token names another user",
    )


# --- push.js in headless Chromium -----------------------------------------------------

PAGE_SCRIPT = """async ({ transport, token }) => {
    const { connect } = await import("/static/push.js");
    window.received = [];
    const options = { transport };  // `user` left at its default, as a page may
    if (token) options.token = token;
    window.push = connect(options);
    window.push.on("message", ({ id, data }) => window.received.push({ id, data }));
}"""


@pytest.fixture
def context(browser: Browser):
    """One browser profile: every page of a test shares its localStorage and cookies."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


def start_page(context, url: str, transport: str, token: str | None = None):
    """A page of the service's own origin running push.js with a fixed token (or, without
    one, the cookie), open once the service answered. `page.urls`: every URL it asked for,
    WebSockets included."""
    page = context.new_page()
    page.urls = []
    page.on("request", lambda request: page.urls.append(request.url))
    page.on("websocket", lambda ws: page.urls.append(ws.url))
    page.goto(url + "/static/demo.css")
    page.evaluate(PAGE_SCRIPT, {"transport": transport, "token": token})
    wait_until(lambda: page.evaluate("window.push.state") == "open", what="the page to connect")
    return page


def received(page) -> list[str]:
    return [item["data"] for item in page.evaluate("window.received")]


def presence(r, user: str) -> int:
    return r.zcard(f"{{user_{user}_messages}}:presence")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_pages_token_never_appears_in_a_url_or_the_access_log(
    context, service, url, r, transport
):
    user = f"private-{transport}"
    token = mint(user)
    page = start_page(context, url, transport, token)
    r.lpush(f"user_{user}_messages", "one", "two")
    wait_until(lambda: received(page) == ["one", "two"], what="both messages")
    last_id = page.evaluate("window.received")[-1]["id"]
    wait_until(
        lambda: (receipts(url, user)["acknowledged"] or {}).get("id") == last_id,
        what="the page's acks",
    )
    page.close()  # the stream's request ends: gunicorn logs it
    path = "/ws?" if transport == "ws" else "/stream?"
    opened = [u for u in page.urls if path in u]
    assert opened and all("ticket=" in u for u in opened)  # the stream opened with a ticket
    assert [u for u in page.urls if token in u or "token=" in u] == []
    if transport == "sse":
        # gunicorn logs a stream when it ends (an upgraded WebSocket, never).
        wait_until(lambda: path in service.access_log.read_text(), what="the stream's log line")
    log = service.access_log.read_text()
    assert '"POST /ticket HTTP/1.1" 200' in log
    if transport == "sse":
        assert '"POST /ack HTTP/1.1" 200' in log  # acks over HTTP, no query string
    assert token not in log
    assert "token=" not in log
    assert token not in service.log()  # nor in the service's own log


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_the_next_user_of_a_shared_browser_resumes_from_their_own_cursor(
    context, url, r, transport
):
    """Bob reads on this browser, then on his phone; Alice uses the browser after him; when
    Bob comes back he gets what he has not seen here, though its ids are below Alice's
    cursor (filed under one name for everyone, he would resume after Alice's id)."""
    bob, alice = f"bob-{transport}", f"alice-{transport}"
    page = start_page(context, url, transport, mint(bob))
    r.lpush(f"user_{bob}_messages", "bob 0")
    wait_until(lambda: received(page) == ["bob 0"], what="bob's first message")
    page.close()
    wait_until(lambda: presence(r, bob) == 0, what="bob's page to leave")
    with open_sse(url, {"ticket": post_ticket(url, mint(bob))}) as phone:
        phone.wait_for_comment("connected")
        r.lpush(f"user_{bob}_messages", "bob 1", "bob 2")
        assert [event.data for event in phone.events(2)] == ["bob 1", "bob 2"]
    page = start_page(context, url, transport, mint(alice))
    r.lpush(f"user_{alice}_messages", "alice 1")
    wait_until(lambda: received(page) == ["alice 1"], what="alice's message")
    page.close()
    page = start_page(context, url, transport, mint(bob))
    wait_until(lambda: received(page) == ["bob 1", "bob 2"], what="bob's messages")
    stored = page.evaluate("Object.keys(localStorage).sort()")
    assert stored == [f"push:cursor:default:{alice}", f"push:cursor:default:{bob}"]


@pytest.mark.browser
def test_a_cookie_page_files_its_cursor_under_the_user_the_service_names(context, url, r):
    """A page without a token cannot read its user: it connects without a cursor and learns
    the user from the service's hello."""
    user = "cookie-carol"
    context.add_cookies([{"name": "push_token", "value": mint(user), "url": url}])
    page = start_page(context, url, "sse")
    r.lpush(f"user_{user}_messages", "for carol")
    wait_until(lambda: received(page) == ["for carol"], what="carol's message")
    shown_id = page.evaluate("window.received")[0]["id"]
    assert page.evaluate("({...localStorage})") == {f"push:cursor:default:{user}": shown_id}


@pytest.mark.browser
def test_two_peoples_pages_open_at_once_in_one_browser_do_not_share_a_connection(context, url, r):
    """Tabs share one connection per user: pages with tokens of different users each lead
    their own, and neither shows the other's messages."""
    alice = start_page(context, url, "ws", mint("shared-alice"))
    bob = start_page(context, url, "ws", mint("shared-bob"))
    assert [page.evaluate("window.push.role") for page in (alice, bob)] == ["leader", "leader"]
    r.lpush("user_shared-alice_messages", "for alice")
    r.lpush("user_shared-bob_messages", "for bob")
    wait_until(lambda: received(alice) == ["for alice"], what="alice's message")
    wait_until(lambda: received(bob) == ["for bob"], what="bob's message")
    assert received(alice) == ["for alice"]


def sign_in(context, url: str, user: str) -> None:
    """The site's login: the token cookie of `user` replaces whoever had it."""
    context.add_cookies([{"name": "push_token", "value": mint(user), "url": url}])


def delivered_id(url: str, user: str) -> str | None:
    return (receipts(url, user)["delivered"] or {}).get("id")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_cookie_page_reloaded_resumes_from_its_cursor(context, url, r, transport):
    """The service wrote a message to the page's connection (the user's delivered mark moved
    past it) but the page never showed it: its script was paused, then it was closed. The
    page loaded again shows it: it resumes from its stored cursor, not from the mark."""
    user = f"cookie-reload-{transport}"
    sign_in(context, url, user)
    page = start_page(context, url, transport)
    r.lpush(f"user_{user}_messages", "shown")
    wait_until(lambda: received(page) == ["shown"], what="the first message")
    shown_id = page.evaluate("window.received")[0]["id"]
    wait_until(lambda: delivered_id(url, user) == shown_id, what="the first delivered mark")
    debugger = context.new_cdp_session(page)
    debugger.send("Debugger.enable")
    debugger.send("Debugger.pause")  # the page's script stops: nothing more is shown or stored
    r.lpush(f"user_{user}_messages", "written, not shown")
    wait_until(
        lambda: delivered_id(url, user) != shown_id,
        what="the second message to be written to the page's connection",
    )
    page.close()
    wait_until(lambda: presence(r, user) == 0, what="the page's connection to end")
    page = start_page(context, url, transport)
    wait_until(lambda: received(page) == ["written, not shown"], what="the unshown message")


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_the_next_user_of_a_shared_browser_with_cookie_pages_gets_all_their_messages(
    context, url, r, transport
):
    """Pages that rely on the cookie: Bob reads on this browser, then on his phone; Alice
    signs in after him; then Dave, who never used this browser, with mail waiting; then Bob
    again, with mail waiting too. Nobody resumes from another's cursor, Dave gets all his
    mail, and Bob gets what he has not seen here, though its ids are below Alice's cursor."""
    bob, alice, dave = (f"cookie-{name}-{transport}" for name in ("bob", "alice", "dave"))

    def visit(user: str, expected: list[str], before=lambda: None) -> None:
        sign_in(context, url, user)
        before()
        page = start_page(context, url, transport)
        wait_until(lambda: received(page) == expected, what=f"{user}'s messages")
        page.close()
        wait_until(lambda: presence(r, user) == 0, what=f"{user}'s page to leave")

    visit(bob, ["bob 0"], lambda: r.lpush(f"user_{bob}_messages", "bob 0"))
    with open_sse(url, {"ticket": post_ticket(url, mint(bob))}) as phone:
        phone.wait_for_comment("connected")
        r.lpush(f"user_{bob}_messages", "bob 1", "bob 2")
        assert [event.data for event in phone.events(2)] == ["bob 1", "bob 2"]
    visit(alice, ["alice 1"], lambda: r.lpush(f"user_{alice}_messages", "alice 1"))
    visit(dave, ["dave 1", "dave 2"], lambda: r.lpush(f"user_{dave}_messages", "dave 1", "dave 2"))
    visit(bob, ["bob 1", "bob 2", "bob 3"], lambda: r.lpush(f"user_{bob}_messages", "bob 3"))

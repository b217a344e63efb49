"""PUSH_AUTH_URL end to end: gunicorn (one gevent worker, so one cache), a real Redis, and
a real site (an http.server in this process) whose hook answers as each test sets it up.
Each test uses session cookies of its own, so no cache entry carries over."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from clients import metric_sum, open_sse, open_ws, wait_until
from servers import Gunicorn, own_redis, service_env
from websockets.exceptions import ConnectionClosed, InvalidStatus

from push import disconnect
from push.edge.parts import parts
from push.identity.site_hook import parse_answer
from push.model.keys import user_keys
from push.model.settings import ConfigError, load_config
from push.service import create_app

pytestmark = pytest.mark.e2e

SECRET = "auth-hook-test-secret-0123456789abcdef"


class Site:
    """The site's hook: `answers[session]` is (status, body, delay_s, headers); every call
    is recorded as (session, authorization)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, float, dict[str, str]]] = {}
        self.calls: list[tuple[str, str | None]] = []
        #: Sessions answered a header line at a time, this many seconds apart.
        self.trickle_s: dict[str, float] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cookie = self.headers.get("Cookie") or ""
                session = dict(
                    part.strip().partition("=")[::2] for part in cookie.split(";") if part
                ).get("session", "")
                site.calls.append((session, self.headers.get("Authorization")))
                if session in site.trickle_s:
                    self.trickle(site.trickle_s[session])
                    return
                status, body, delay_s, headers = site.answers.get(session, (401, b"", 0, {}))
                if delay_s:
                    time.sleep(delay_s)  # the site being slow is what is tested
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def trickle(self, every_s: float) -> None:
                """A slow site: each header line in time, the whole answer far too late."""
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    for line in range(10):
                        self.wfile.flush()
                        time.sleep(every_s)  # the site being slow is what is tested
                        self.wfile.write(f"X-Line-{line}: {line}\r\n".encode())
                except OSError:
                    pass  # push gave up and closed the connection

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/push-auth"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def session(self, status: int = 200, body: object = None, delay_s: float = 0, **headers):
        """A fresh session name the hook answers this way (body: JSON, or bytes as is)."""
        name = uuid.uuid4().hex
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[name] = (status, raw, delay_s, headers)
        return name

    def calls_for(self, session: str) -> int:
        return sum(1 for seen, _ in self.calls if seen == session)


@pytest.fixture(scope="module")
def site():
    site = Site()
    yield site
    site.server.shutdown()
    site.server.server_close()


redis_server, r = own_redis("auth-hook")


@pytest.fixture(scope="module")
def service(redis_server, site, tmp_path_factory):
    env = service_env(
        redis_server.url,
        PUSH_AUTH_URL=site.url,
        PUSH_JWT_SECRET=SECRET,
        PUSH_JWT_LEEWAY_S="0",
        PUSH_HEARTBEAT_S="1",
        PUSH_WS_PING_S="1",
    )
    server = Gunicorn(tmp_path_factory.mktemp("auth-hook") / "gunicorn.log", env, workers=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def url(service):
    return service.base_url


def cookie(session: str) -> dict[str, str]:
    return {"Cookie": f"session={session}; theme=dark"}


def hook_calls(base_url: str, result: str) -> float:
    return metric_sum(base_url, "push_auth_hook", {"result": result})


def user_for(user: str, expires_in: float = 300) -> dict[str, object]:
    return {"user_id": user, "expires_in": expires_in}


# --- Admitted, refused ----------------------------------------------------------------


def test_a_cookie_the_site_knows_opens_the_users_stream(url, site, r):
    user = f"u{uuid.uuid4().hex[:8]}"
    session = site.session(200, user_for(user))
    before = hook_calls(url, "admitted")
    with open_sse(url, headers=cookie(session)) as stream:
        assert stream.status == 200
        stream.wait_for_comment("connected")
        r.lpush(f"user_{user}_messages", "hello")
        assert stream.next_event().data == "hello"
    assert site.calls_for(session) == 1
    assert hook_calls(url, "admitted") == before + 1


def test_the_hook_gets_the_requests_cookie_and_authorization(url, site):
    session = site.session(200, user_for("basic_user"))
    headers = {**cookie(session), "Authorization": "Basic YWxpY2U6cHc="}
    with open_sse(url, headers=headers) as stream:
        stream.wait_for_comment("connected")
    assert (session, "Basic YWxpY2U6cHc=") in site.calls


def test_a_numeric_user_id_is_taken_as_its_text(url, site, r):
    session = site.session(200, {"user_id": 4242, "expires_in": 60})
    with open_sse(url, headers=cookie(session)) as stream:
        stream.wait_for_comment("connected")
        r.lpush("user_4242_messages", "numeric")
        assert stream.next_event().data == "numeric"


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_from_the_site_refuses_with_401_unauthorized(url, site, status):
    session = site.session(status, b"")
    with open_sse(url, headers=cookie(session)) as stream:
        assert stream.status == 401
        assert json.loads(stream.read_to_end())["error"] == "unauthorized"
        assert stream.header("WWW-Authenticate") == 'Bearer error="unauthorized"'
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, headers=cookie(session))
    assert refused.value.response.status_code == 401


def test_a_refusal_is_remembered_for_a_few_seconds(url, site):
    session = site.session(401, b"")
    for _ in range(3):
        with open_sse(url, headers=cookie(session)) as stream:
            assert stream.status == 401
    assert site.calls_for(session) == 1

    # Past REFUSAL_CACHE_S the site is asked again (a user who just logged in gets in).
    def asked_again() -> bool:
        with open_sse(url, headers=cookie(session)) as stream:
            assert stream.status == 401
        return site.calls_for(session) == 2

    wait_until(asked_again, timeout=10, interval=0.5)


def test_a_request_with_no_cookie_and_no_credential_does_not_reach_the_site(url, site):
    calls = len(site.calls)
    with open_sse(url) as stream:
        assert stream.status == 401
        assert json.loads(stream.read_to_end())["error"] == "missing_token"
    assert len(site.calls) == calls


# --- The site away: like Redis away ---------------------------------------------------


SITE_AWAY = {
    "500": (500, b'{"user_id": "x", "expires_in": 60}', 0, {}),
    "redirect": (302, b"", 0, {"Location": "/login"}),
    "garbage": (200, b"<html>welcome</html>", 0, {}),
    "bad_user_id": (200, b'{"user_id": "no spaces allowed", "expires_in": 60}', 0, {}),
    "no_expiry": (200, b'{"user_id": "x"}', 0, {}),
    "timeout": (200, b'{"user_id": "x", "expires_in": 60}', 2.0, {}),
}


@pytest.mark.parametrize("answer", sorted(SITE_AWAY))
def test_a_site_that_gives_no_usable_answer_is_treated_like_redis_being_away(url, site, answer):
    status, body, delay_s, headers = SITE_AWAY[answer]
    session = uuid.uuid4().hex
    site.answers[session] = (status, body, delay_s, headers)
    started = time.monotonic()
    with open_sse(url, headers=cookie(session)) as stream:
        text = stream.read_to_end().decode()
        assert stream.status == 200
        assert "retry:" in text
        assert "auth hook" in text
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, headers=cookie(session))
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["Retry-After"]
    assert time.monotonic() - started < 2 * (1 + delay_s) + 5


def test_why_the_site_failed_is_logged_and_clients_get_a_generic_detail(url, site, service):
    session = site.session(500, b"")
    with open_sse(url, headers=cookie(session)) as stream:
        text = stream.read_to_end().decode()
    assert "the site's auth hook is unavailable" in text
    assert "500" not in text
    request = urllib.request.Request(
        url + "/ack", data=b'{"id": "1-0"}', method="POST", headers=cookie(session)
    )
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=10)
    detail = json.loads(failed.value.read())["detail"]
    assert detail == "the site's auth hook is unavailable; try again"
    wait_until(lambda: "auth hook failing" in service.log(), timeout=5)
    assert "answered 500" in service.log()


def test_a_failing_site_is_asked_once_per_reconnect_storm_not_once_per_request(url, site):
    session = site.session(500, b"")
    for _ in range(4):
        with open_sse(url, headers=cookie(session)) as stream:
            assert "retry:" in stream.read_to_end().decode()
    assert site.calls_for(session) == 1

    # Past AWAY_CACHE_S the site is asked again (its recovery is seen).
    def asked_again() -> bool:
        with open_sse(url, headers=cookie(session)) as stream:
            stream.read_to_end()
        return site.calls_for(session) == 2

    wait_until(asked_again, timeout=10, interval=0.3)


def test_a_site_trickling_its_answer_is_given_up_at_the_timeout_for_the_whole_call(url, site):
    session = uuid.uuid4().hex
    site.trickle_s[session] = 0.4  # each read well within the 1 s timeout; the call 4 s
    before = hook_calls(url, "timeout")
    started = time.monotonic()
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, headers=cookie(session))
    assert refused.value.response.status_code == 503
    assert time.monotonic() - started < 2.5
    assert hook_calls(url, "timeout") == before + 1


# --- Cache, coalescing ----------------------------------------------------------------


def test_the_sites_answer_is_reused_for_the_next_streams(url, site):
    session = site.session(200, user_for("cached_user"))
    for _ in range(3):
        with open_sse(url, headers=cookie(session)) as stream:
            stream.wait_for_comment("connected")
    assert site.calls_for(session) == 1


def test_concurrent_requests_with_one_cookie_make_one_call_to_the_site(url, site):
    session = site.session(200, user_for("storm_user"), delay_s=0.6)
    statuses: list[int] = []

    def connect() -> None:
        with open_sse(url, headers=cookie(session)) as stream:
            stream.wait_for_comment("connected")
            statuses.append(stream.status)

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 8
    assert site.calls_for(session) == 1


# --- Bounded like a token -------------------------------------------------------------


def test_an_sse_stream_ends_when_the_sites_expires_in_runs_out(url, site):
    session = site.session(200, user_for("short_session", 2))
    opened = time.monotonic()
    with open_sse(url, headers=cookie(session)) as stream:
        stream.wait_for_comment("connected")
        expired = stream.next_event(timeout=6)
        assert (expired.event, json.loads(expired.data)) == ("expired", {"error": "token_expired"})
    assert time.monotonic() - opened < 4.5


def test_a_websocket_closes_4401_when_the_sites_expires_in_runs_out(url, site):
    session = site.session(200, user_for("short_ws", 2))
    with open_ws(url, headers=cookie(session)) as ws, pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=6)
    assert closed.value.rcvd.code == 4401


def test_after_a_disconnect_the_site_is_asked_again_instead_of_refusing_its_old_answer(
    url, site, r
):
    user = f"u{uuid.uuid4().hex[:8]}"
    session = site.session(200, user_for(user))
    for _ in range(2):
        with open_sse(url, headers=cookie(session)) as stream:
            stream.wait_for_comment("connected")
    assert site.calls_for(session) == 1
    disconnect(r, user, "password changed")
    with open_sse(url, headers=cookie(session)) as stream:
        assert stream.status == 200
        stream.wait_for_comment("connected")
    assert site.calls_for(session) == 2


def test_a_fresh_site_answer_counts_as_after_a_revocation_stamped_by_a_clock_ahead(url, site, r):
    user = f"u{uuid.uuid4().hex[:8]}"
    session = site.session(200, user_for(user))
    with open_sse(url, headers=cookie(session)) as stream:
        stream.wait_for_comment("connected")
    # Redis's clock (which stamps a revocation) a minute ahead of the service's.
    revoked = user_keys(user, "user_{user_id}_messages").revoked
    r.set(revoked, int((time.time() + 60) * 1000), ex=300)
    with open_sse(url, headers=cookie(session)) as stream:
        assert stream.status == 200
        stream.wait_for_comment("connected")
    assert site.calls_for(session) == 2


def test_after_a_disconnect_a_ticket_bought_with_the_session_opens_a_stream(url, site, r):
    user = f"u{uuid.uuid4().hex[:8]}"
    session = site.session(200, user_for(user))

    def buy_ticket() -> str:
        request = urllib.request.Request(url + "/ticket", data=b"", method="POST")
        request.add_header("Cookie", f"session={session}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["ticket"]

    buy_ticket()  # the site's answer is now cached
    disconnect(r, user, "password changed")
    with open_sse(url, {"ticket": buy_ticket()}) as stream:
        assert stream.status == 200
        stream.wait_for_comment("connected")
    assert site.calls_for(session) == 2


# --- Tokens first, acks ---------------------------------------------------------------


def test_a_token_is_tried_first_and_the_site_is_not_asked(url, site):
    session = site.session(200, user_for("someone_else"))
    token = jwt.encode({"sub": "token_user", "exp": int(time.time()) + 300}, SECRET, "HS256")
    headers = {**cookie(session), "Authorization": f"Bearer {token}"}
    with open_sse(url, headers=headers) as stream:
        stream.wait_for_comment("connected")
    with open_sse(url, {"token": token}, headers=cookie(session)) as stream:
        stream.wait_for_comment("connected")
    assert site.calls_for(session) == 0


def test_an_ack_from_a_cookie_page_is_identified_by_the_site(url, site):
    session = site.session(200, user_for("acking_user"))
    request = urllib.request.Request(
        url + "/ack", data=b'{"id": "1-0"}', method="POST", headers=cookie(session)
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"acknowledged": False}
    assert site.calls_for(session) == 1


def test_a_session_buys_a_ticket_that_opens_a_stream_without_the_cookie(url, site, r):
    user = f"u{uuid.uuid4().hex[:8]}"
    session = site.session(200, user_for(user))
    request = urllib.request.Request(url + "/ticket", data=b"", method="POST")
    request.add_header("Cookie", f"session={session}")
    with urllib.request.urlopen(request, timeout=10) as response:
        ticket = json.loads(response.read())["ticket"]
    with open_sse(url, {"ticket": ticket}) as stream:
        stream.wait_for_comment("connected")
        r.lpush(f"user_{user}_messages", "by ticket")
        assert stream.next_event().data == "by ticket"
    assert site.calls_for(session) == 1


def test_an_ack_while_the_site_is_away_is_a_503_with_retry_after(url, site):
    session = site.session(502, b"")
    request = urllib.request.Request(
        url + "/ack", data=b'{"id": "1-0"}', method="POST", headers=cookie(session)
    )
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=10)
    assert failed.value.code == 503
    assert failed.value.headers["Retry-After"]
    assert json.loads(failed.value.read())["error"] == "unavailable"


def test_a_cross_site_cookie_request_without_an_allowed_origin_is_refused(url, site):
    session = site.session(200, user_for("csrf_victim"))
    headers = {**cookie(session), "Sec-Fetch-Site": "cross-site"}
    with open_sse(url, headers=headers) as stream:
        assert stream.status == 403
    assert site.calls_for(session) == 0


def test_a_cross_site_cookie_request_with_basic_credentials_is_refused_not_asked(url, site):
    session = site.session(200, user_for("basic_victim"))
    headers = {
        **cookie(session),
        "Authorization": "Basic YWxpY2U6cHc=",  # attached by the browser, like the cookie
        "Sec-Fetch-Site": "cross-site",
    }
    with open_sse(url, headers=headers) as stream:
        assert stream.status == 403
        assert json.loads(stream.read_to_end())["error"] == "origin_not_allowed"
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, headers=headers)
    assert refused.value.response.status_code == 403
    assert site.calls_for(session) == 0


# --- Parsing the answer, bounding the session ----------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,  # under MAX_ANSWER_BYTES, deeper than json's recursion
        b'{"user_id": "x", "expires_in": {"a": ' * 1000 + b"1" + b"}" * 1001,
        b'{"user_id": "x", "expires_in": 1e400}',
        b'{"user_id": "x", "expires_in": -' + b"1" + b"0" * 400 + b"}",
        b'{"user_id": "x", "expires_in": 0}',
        b'{"user_id": "x", "expires_in": true}',
        b'{"user_id": "x", "expires_in": NaN}',
        b"\xff\xfe",
    ],
)
def test_any_answer_that_cannot_be_parsed_is_a_value_error(body):
    with pytest.raises(ValueError):
        parse_answer(body)


def test_a_huge_expires_in_is_cut_to_the_longest_session_not_an_overflow():
    huge = b'{"user_id": "x", "expires_in": 1' + b"0" * 400 + b"}"
    assert parse_answer(huge, 3600) == ("x", 3600.0)
    assert parse_answer(b'{"user_id": 7, "expires_in": 90.5}', 3600) == ("7", 90.5)


def test_the_sites_session_is_bounded_by_push_jwt_max_age_s(site):
    app = create_app({"PUSH_AUTH_URL": site.url, "PUSH_JWT_MAX_AGE_S": 600})
    hook = parts(app).site_hook
    assert hook is not None and hook.max_age_s == 600
    session = site.session(200, user_for("year_long", 365 * 86400))
    identity = hook.identify(f"session={session}", "")
    assert identity.expires_at is not None
    assert identity.expires_at - time.time() <= 600 + 1


# --- Configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "ftp://site/auth",
        "site.example/auth",
        "http://",
        "http://site:abc/x",
        "http://site:99999/x",
        "http://user:pw@site/x",
        "http://site/x#frag",
        "http://[::1/x",
    ],
)
def test_a_wrong_auth_url_stops_start_up_and_is_named(value):
    with pytest.raises(ConfigError, match="PUSH_AUTH_URL"):
        load_config({"PUSH_JWT_SECRET": SECRET, "PUSH_AUTH_URL": value})


def test_with_an_auth_url_the_service_starts_without_a_jwt_secret():
    config = load_config({"PUSH_AUTH_URL": "https://shop.example/push-auth"})
    assert config["PUSH_AUTH_URL"] == "https://shop.example/push-auth"
    assert config["PUSH_AUTH_CACHE_S"] == 30
    with pytest.raises(ConfigError, match="PUSH_JWT_SECRET"):
        load_config({})

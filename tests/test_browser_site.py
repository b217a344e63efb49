"""examples/flask_login_site in headless Chromium: the page opens its stream with the
site's session cookie (no token), through PUSH_AUTH_URL; a logout ends it at the next
reconnect. The site and push run on one host, different ports (cookies are not
port-scoped), push with no JWT secret at all."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid

import pytest
import redis
from clients import closed_count, wait_until
from playwright.sync_api import expect
from servers import ROOT, Gunicorn, service_env

from push.storage.server import RedisServer, free_port

pytestmark = pytest.mark.e2e

#: Seconds the site's answers hold: the stream reconnects (and asks again) this often.
SESSION_S = 3


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("site-redis")).start()
    yield server
    server.stop()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def shop(redis_server, tmp_path_factory):
    """(site URL, push URL): the example site and the push service asking it."""
    folder = tmp_path_factory.mktemp("site")
    site_port = free_port()
    site_url = f"http://127.0.0.1:{site_port}"
    push = Gunicorn(
        folder / "gunicorn.log",
        service_env(
            redis_server.url,
            PUSH_AUTH_URL=f"{site_url}/push-auth",
            PUSH_ALLOWED_ORIGINS=site_url,
            PUSH_JWT_LEEWAY_S="0",
            PUSH_RETRY_MS="500",
        ),
        workers=1,
    )
    env = {
        **os.environ,
        "SITE_PORT": str(site_port),
        "PUSH_URL": push.base_url,
        "SESSION_EXPIRES_IN": str(SESSION_S),
    }
    with open(folder / "site.log", "wb") as log:
        site = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "flask_login_site" / "app.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: answers(f"{site_url}/login"), timeout=30, what="the site")
        push.start()
        yield site_url, push.base_url
    finally:
        push.stop()
        site.terminate()
        site.wait(10)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_the_session_cookie_opens_the_stream_renews_it_and_a_logout_ends_it(
    browser, shop, redis_server, transport
):
    site_url, _ = shop
    name = f"shopper{uuid.uuid4().hex[:8]}"
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    client = redis.Redis.from_url(redis_server.url)
    try:
        page.goto(f"{site_url}/login")
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", "push")
        page.click("#sign-in")
        page.goto(f"{site_url}/?transport={transport}")
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        client.lpush(f"user_{name}_messages", "your order has shipped")
        expect(page.locator("#messages li")).to_have_text(["your order has shipped"])
        # The session's stream ends at the site's expires_in; push.js reopens with the
        # cookie, the site says yes again, and messages keep coming.
        wait_until(
            lambda: closed_count(shop[1], transport, "token_expired") >= 1,
            timeout=SESSION_S + 10,
        )
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        client.lpush(f"user_{name}_messages", "out for delivery")
        expect(page.locator("#messages li")).to_have_text(
            ["your order has shipped", "out for delivery"]
        )
        # Signed out (in another tab, say): the next reopen is refused, for good.
        page.evaluate("fetch('/logout', {method: 'POST', redirect: 'manual'})")
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "unauthorized", timeout=(SESSION_S + 20) * 1000
        )
    finally:
        client.close()
        context.close()

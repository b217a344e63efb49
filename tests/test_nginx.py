"""The nginx recipe, `deploy/nginx.conf`, run by a real nginx in front of the real service.

The test's copy of the recipe differs only where a test must: free loopback ports instead
of 80 and 443, a certificate made here, a log file in the test's folder, and this
service's port. Everything else (headers, locations, allow-lists, log format) is the file
as shipped.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from clients import SseStream, drainer_pids, wait_until, ws_frames
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers import ROOT, Gunicorn, service_env
from websockets.sync.client import ClientConnection, connect

from push.storage.server import free_port

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NGINX is None, reason="no nginx (make test installs Debian's where it can)"),
]

SECRET = "nginx-tests-secret-0123456789abcdef"
#: The public host name nginx serves in these tests (the recipe's push.example.com).
HOST = "localhost"
#: A loopback address that is not in the recipe's allow-list: "outside" on one machine.
OUTSIDE = "127.0.0.2"
FORGED = "6.6.6.6"
#: gunicorn's access line: the client's address as push takes it (after PUSH_TRUSTED_PROXIES),
#: then the X-Forwarded-For nginx sent.
ACCESS_FORMAT = '%(h)s xff=%({x-forwarded-for}i)s "%(r)s" %(s)s'


def mint(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, "HS256")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for HOST (and 127.0.0.1), valid for a day, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Proxy:
    """nginx running the recipe: plain HTTP on `http_port`, TLS on `https_port`."""

    folder: Path
    http_port: int
    https_port: int
    tls: ssl.SSLContext

    @property
    def origin(self) -> str:
        """What a page served by this nginx sends as its Origin."""
        return f"https://{HOST}:{self.https_port}"

    def access_log(self) -> str:
        path = self.folder / "push.access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS request from the loopback address `source`; status, headers, body."""
        connection = self.connect(source)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def connect(self, source: str = "127.0.0.1") -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            HOST, self.https_port, context=self.tls, timeout=10, source_address=(source, 0)
        )

    def open_sse(self, query: str, headers: dict[str, str] | None = None) -> SseStream:
        connection = self.connect()
        connection.request(
            "GET", "/stream?" + query, headers={"Accept": "text/event-stream", **(headers or {})}
        )
        return SseStream(connection, connection.getresponse())

    def open_ws(self, query: str, headers: dict[str, str] | None = None) -> ClientConnection:
        return connect(
            f"wss://{HOST}:{self.https_port}/ws?{query}",
            ssl=self.tls,
            origin=self.origin,
            additional_headers=headers or {},
            open_timeout=10,
            close_timeout=2,
        )


def recipe_for_test(folder: Path, upstream_port: int, http_port: int, https_port: int) -> str:
    """deploy/nginx.conf with its ports, certificate and log path moved into `folder`."""
    cert, key = self_signed_certificate(folder)
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    replacements = {
        "127.0.0.1:8000": f"127.0.0.1:{upstream_port}",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "server_name push.example.com;": f"server_name {HOST};",
        "/etc/letsencrypt/live/push.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/push.example.com/privkey.pem": str(key),
        "/var/log/nginx/push.access.log": str(folder / "push.access.log"),
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx.conf no longer says {old!r}"
        site = site.replace(old, new)
    # The recipe includes snippets/push-proxy-headers.conf, relative to nginx's own
    # configuration directory: here, the folder of the test's nginx.conf.
    (folder / "snippets").mkdir()
    shutil.copy(ROOT / "deploy" / "push-proxy-headers.conf", folder / "snippets")
    return site


@pytest.fixture(scope="module")
def upstream(redis_server, tmp_path_factory) -> Iterator[Gunicorn]:
    """The service as it runs behind the recipe: tokens, no demo, one trusted proxy, and
    gunicorn's access log (the address push takes for the client's)."""
    env = service_env(
        redis_server.url,
        PUSH_JWT_SECRET=SECRET,
        PUSH_TRUSTED_PROXIES="1",
        PUSH_HEARTBEAT_S="1",
    )
    log = tmp_path_factory.mktemp("upstream") / "gunicorn.log"
    access = ["--access-logfile", "-", "--access-logformat", ACCESS_FORMAT]
    server = Gunicorn(log, env, workers=1, extra_args=access).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("nginx")
    http_port, https_port = free_port(), free_port()
    site = recipe_for_test(folder, upstream.port, http_port, https_port)
    conf = folder / "nginx.conf"
    conf.write_text(
        f"daemon off;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
        "events { worker_connections 1024; }\n"
        # Anything the recipe forgot to log itself lands here, not in push.access.log.
        f"http {{\n access_log {folder}/other.log;\n"
        f" client_body_temp_path {folder};\n proxy_temp_path {folder};\n"
        f"{site}\n}}\n"
    )
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(folder)], stdin=subprocess.DEVNULL)
    tls = ssl.create_default_context(cafile=str(folder / "fullchain.pem"))
    running = Proxy(folder, http_port, https_port, tls)
    try:
        wait_until(lambda: _answers(running), what="nginx to answer")
        yield running
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def _answers(proxy: Proxy) -> bool:
    try:
        return proxy.request("GET", "/healthz")[0] == 200
    except OSError:
        return False


def test_both_transports_work_over_tls_through_the_recipe(proxy, r, user_id):
    token = mint(user_id)
    with proxy.open_sse("token=" + token) as stream, proxy.open_ws("token=" + token) as ws:
        assert stream.status == 200
        stream.wait_for_comment("connected")
        wait_until(lambda: drainer_pids(r, user_id))
        r.lpush(f"user_{user_id}_messages", "through nginx")
        assert stream.next_event().data == "through nginx"  # not buffered
        assert ws_frames(ws, 1)[0]["data"] == "through nginx"
        stream.wait_for_comment("keepalive", timeout=5)


def test_a_page_on_the_public_host_gets_a_ticket_and_a_stream(proxy, r, user_id):
    """push sees the public host (Host, X-Forwarded-Host, -Proto, -Port) in every location,
    so the page's own origin is same-site, not a foreign one."""
    page = {"Origin": proxy.origin}
    status, _, body = proxy.request(
        "POST", "/ticket", {**page, "Authorization": f"Bearer {mint(user_id)}"}
    )
    assert status == 200, body
    ticket = json.loads(body)["ticket"]
    with proxy.open_sse("ticket=" + ticket, page) as stream:
        assert stream.status == 200, stream.response.read()
        stream.wait_for_comment("connected")
    with proxy.open_ws("token=" + mint(user_id)) as ws:  # sends the page's Origin
        wait_until(lambda: drainer_pids(r, user_id))
        r.lpush(f"user_{user_id}_messages", "same site")
        assert ws_frames(ws, 1)[0]["data"] == "same site"


def test_forged_forwarded_headers_change_neither_the_address_nor_the_host(proxy, upstream, user_id):
    forged = {
        "X-Forwarded-For": FORGED,
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Port": "8443",
        "Origin": proxy.origin,  # still the page's own: nginx overwrites what the client said
    }
    status, _, _ = proxy.request(
        "POST", "/ticket?probe=forged", {**forged, "Authorization": f"Bearer {mint(user_id)}"}
    )
    assert status == 200
    with proxy.open_sse("probe=forged&token=" + mint(user_id), forged) as stream:
        assert stream.status == 200
        stream.wait_for_comment("connected")

    def logged() -> list[str]:
        return [line for line in upstream.log().splitlines() if "probe=forged" in line]

    lines = wait_until(lambda: len(logged()) >= 2 and logged(), what="gunicorn's two lines")
    for line in lines:
        # nginx saw the client at 127.0.0.1, and said only that: nothing appended.
        assert line.startswith("127.0.0.1 xff=127.0.0.1 "), line
        assert FORGED not in line


def test_plain_http_redirects_to_https_on_the_servers_own_name(proxy):
    for host in (f"{HOST}:{proxy.http_port}", "evil.example"):
        connection = http.client.HTTPConnection(HOST, proxy.http_port, timeout=10)
        try:
            connection.request("GET", "/stream?ticket=abc", headers={"Host": host})
            response = connection.getresponse()
            assert response.status == 301
            assert response.getheader("Location") == f"https://{HOST}/stream?ticket=abc"
        finally:
            connection.close()


@pytest.mark.parametrize("path", ["/healthz", "/ticket", "/stream", "/no-such-page"])
def test_every_https_answer_carries_hsts(proxy, path):
    method = "POST" if path == "/ticket" else "GET"
    _, headers, _ = proxy.request(method, path)
    assert headers.get("Strict-Transport-Security", "").startswith("max-age=")


@pytest.mark.parametrize("path", ["/metrics", "/readyz", "/%6detrics", "//readyz?x=1"])
def test_operators_endpoints_are_refused_from_outside(proxy, path):
    status, _, body = proxy.request("GET", path, source=OUTSIDE)
    assert status == 403
    assert b"redis" not in body


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_operators_endpoints_answer_on_this_host(proxy, path):
    assert proxy.request("GET", path)[0] == 200


def test_the_access_log_keeps_no_token_or_ticket(proxy, r, user_id):
    before = len(proxy.access_log())
    token = mint(user_id)
    _, _, body = proxy.request("POST", "/ticket", {"Authorization": f"Bearer {token}"})
    ticket = json.loads(body)["ticket"]
    with proxy.open_sse("ticket=" + ticket) as stream:
        stream.wait_for_comment("connected")
    with proxy.open_sse("%74oken=" + token + "&user=x") as stream:
        stream.wait_for_comment("connected")  # werkzeug decodes the name: it authenticates
    with proxy.open_ws("TICKET=garbage-ticket-value&token=" + token):
        pass
    proxy.request("POST", "/ack?token=" + token, {"Content-Type": "application/json"})
    log = wait_until(
        lambda: len((text := proxy.access_log()[before:]).splitlines()) >= 5 and text,
        what="nginx to log the five requests",
    )
    assert log.count("/stream") == 2 and "/ws" in log and "/ack" in log
    assert token not in log
    assert ticket not in log
    assert "garbage-ticket-value" not in log
    assert token.split(".")[2] not in log  # not even the signature alone

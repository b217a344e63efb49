"""gunicorn's log lines never show a token or a ticket, however the request spells its name.

werkzeug percent-decodes parameter names, so `?%74oken=<jwt>` authenticates exactly as
`?token=<jwt>` does; the redaction in gunicorn.conf.py must read names the same way.
"""

from __future__ import annotations

import http.client
import runpy
import time

import jwt
import pytest
from clients import SseStream, wait_until
from servers import ROOT, Gunicorn, service_env

SECRET = "redaction-tests-secret-0123456789abcdef"

redact_secrets = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["redact_secrets"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /stream?token=abc HTTP/1.1", "GET /stream?token=[redacted] HTTP/1.1"),
        ("GET /ws?ticket=abc HTTP/1.1", "GET /ws?ticket=[redacted] HTTP/1.1"),
        ("GET /stream?%74oken=abc HTTP/1.1", "GET /stream?%74oken=[redacted] HTTP/1.1"),
        ("GET /ws?%74%69%63ket=abc", "GET /ws?%74%69%63ket=[redacted]"),
        ("GET /stream?tok%65n=abc", "GET /stream?tok%65n=[redacted]"),
        ("GET /stream?%54OKEN=abc", "GET /stream?%54OKEN=[redacted]"),
        ("GET /stream?%2574oken=abc", "GET /stream?%2574oken=[redacted]"),
        ("GET /stream?a=1&token=abc&b=2", "GET /stream?a=1&token=[redacted]&b=2"),
        ("GET /stream?token=abc&Ticket=def", "GET /stream?token=[redacted]&Ticket=[redacted]"),
        ("GET /stream?token=abc;d=e&f=g", "GET /stream?token=[redacted]&f=g"),
        ('"token=abc" 200', '"token=[redacted]" 200'),  # %(q)s, quoted
        ("token=abc", "token=[redacted]"),
        ("Invalid request: 'GET /x?ticket=abc'", "Invalid request: 'GET /x?ticket=[redacted]'"),
        (
            "GET /stream?user_id=42&tokens=abc&retoken=x",
            "GET /stream?user_id=42&tokens=abc&retoken=x",
        ),
        ("GET /stream?to+ken=abc", "GET /stream?to+ken=abc"),
        ("GET /stream?token= HTTP/1.1", "GET /stream?token=[redacted] HTTP/1.1"),
    ],
)
def test_redaction_reads_parameter_names_decoded(line, expected):
    assert redact_secrets(line) == expected


@pytest.mark.e2e
def test_a_percent_encoded_token_name_is_redacted_in_the_access_log(redis_server, tmp_path):
    token = jwt.encode({"sub": "encoded", "exp": int(time.time()) + 300}, SECRET, "HS256")
    env = service_env(redis_server.url, PUSH_JWT_SECRET=SECRET, PUSH_HEARTBEAT_S="1")
    server = Gunicorn(
        tmp_path / "gunicorn.log", env, workers=1, extra_args=["--access-logfile", "-"]
    ).start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/stream?%74oken=" + token)
        with SseStream(connection, connection.getresponse()) as stream:
            assert stream.status == 200  # the encoded name authenticates
            stream.wait_for_comment("connected")
        log = wait_until(lambda: "GET /stream" in (text := server.log()) and text)
    finally:
        server.stop()
    assert token not in log
    assert token.split(".")[2] not in log
    assert "%74oken=[redacted]" in log

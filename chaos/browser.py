"""The browser as the client: Chromium's own EventSource and WebSocket through restarts.

A plain page of the service's origin (its stylesheet, so no page script of ours runs)
opens `new EventSource("/stream?user_id=...")`, left to reconnect by itself with its
native `Last-Event-ID`, and a WebSocket with the demo page's reconnect logic (capped,
jittered backoff; the cursor in `?last_event_id=`). While a producer pushes numbered
messages to both users, a worker is SIGKILLed, gunicorn is restarted (SIGTERM, wait,
start on the same port) and another worker is SIGKILLed. Every number must arrive, in
order, on both transports.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser

from chaos.procs import Service, start_redis
from chaos.producer import Producer
from tests.harness.limits import raise_nofile

#: The page's script: the browser's own EventSource, and the demo page's WebSocket logic.
PAGE_SCRIPT = """
({sseUser, wsUser}) => {
  const state = window.__chaos = {sse: [], ws: [], sseOpens: 0, sseErrors: 0,
                                  sseClosed: false, wsOpens: 0, wsCloses: []};
  const source = new EventSource(`/stream?user_id=${encodeURIComponent(sseUser)}`);
  source.onopen = () => { state.sseOpens += 1; };
  source.onmessage = (event) => state.sse.push([event.lastEventId, event.data, Date.now()]);
  source.onerror = () => {
    state.sseErrors += 1;
    state.sseClosed = source.readyState === EventSource.CLOSED;
  };

  let lastId = null;
  let attempt = 0;
  const seen = new Set();
  const connect = () => {
    const url = `ws://${location.host}/ws?user_id=${encodeURIComponent(wsUser)}` +
      (lastId ? `&last_event_id=${encodeURIComponent(lastId)}` : "");
    const socket = new WebSocket(url);
    socket.onopen = () => { attempt = 0; state.wsOpens += 1; };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.reset) { lastId = frame.id; return; }
      if (seen.has(frame.id)) return;
      seen.add(frame.id);
      lastId = frame.id;
      state.ws.push([frame.id, frame.data, Date.now()]);
    };
    socket.onclose = (event) => {
      state.wsCloses.push(event.code);
      const base = event.code === 1012 || event.code === 1013 ? 1000 : 250;
      const delay = Math.min(15000, base * 2 ** attempt) * (0.5 + Math.random());
      attempt += 1;
      setTimeout(connect, delay);
    };
  };
  connect();
}
"""

SERVICE_SETTINGS = {
    "PUSH_DEMO": "1",
    "PUSH_HEARTBEAT_S": "1",
    "PUSH_RETRY_MS": "500",
    "PUSH_RECONNECT_SPREAD_S": "1",
}
SSE_USER, WS_USER = "browser-sse", "browser-ws"


@dataclass
class BrowserResult:
    messages: int
    faults: list[str] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[int]] = field(default_factory=dict)
    reordered: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    resumed_with_last_event_id: int = 0
    ws_close_codes: list[int] = field(default_factory=list)
    sse_gave_up: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and not any(self.missing.values())
            and not any(self.reordered.values())
            and self.resumed_with_last_event_id > 0
            and not self.sse_gave_up
        )


def run_browser(browser: Browser, workdir: Path, messages: int = 300, rate: float = 30.0):
    """Run the browser scenario in `workdir`; `messages` per transport, `rate` per second each."""
    raise_nofile()
    started = time.monotonic()
    result = BrowserResult(messages)
    redis_server = start_redis(workdir / "redis", "always")
    service = producer = context = None
    try:
        service = Service(workdir, redis_server.url, **SERVICE_SETTINGS).start()
        context = browser.new_context()
        page = context.new_page()
        resumes = []
        page.on("request", lambda request: _note_resume(request, resumes))
        page.goto(service.base_url + "/static/demo.css")
        page.evaluate(PAGE_SCRIPT, {"sseUser": SSE_USER, "wsUser": WS_USER})
        page.wait_for_function("() => __chaos.sseOpens > 0 && __chaos.wsOpens > 0", timeout=15_000)
        t0 = time.time() + 0.5
        total = 2 * messages
        producer = Producer(redis_server.url, [SSE_USER, WS_USER], {}, total, 2 * rate, t0)
        producer.start()
        _faults(service, result, t0, messages / rate)
        producer.join(timeout=messages / rate + 60)
        page.wait_for_function(
            "n => __chaos.sse.length >= n && __chaos.ws.length >= n",
            arg=messages,
            timeout=60_000,
        )
        _analyse(page.evaluate("() => __chaos"), result)
        result.resumed_with_last_event_id = len(resumes)
    finally:
        if producer is not None:
            producer.stop_event.set()
            producer.join(timeout=10)
        if context is not None:
            context.close()
        if service is not None:
            service.stop()
        redis_server.stop()
        result.duration_s = time.monotonic() - started
    return result


def _note_resume(request, resumes: list[str]) -> None:
    """An EventSource reconnect: a /stream request carrying the browser's Last-Event-ID."""
    if "/stream" in request.url:
        last = request.all_headers().get("last-event-id")
        if last:
            resumes.append(last)


def _faults(service: Service, result: BrowserResult, t0: float, produce_s: float) -> None:
    """At a quarter: SIGKILL a worker; at half: SIGTERM gunicorn, start it again on the
    same port; at three quarters: SIGKILL a worker of the new gunicorn."""
    plan = [(0.25, "kill"), (0.5, "restart"), (0.75, "kill")]
    rng = random.Random(8)
    for fraction, kind in plan:
        delay = t0 + fraction * produce_s - time.time()
        if delay > 0:
            time.sleep(delay)  # pacing: faults at their moment in the run
        if kind == "kill":
            victim = rng.choice(service.worker_pids())
            os.kill(victim, signal.SIGKILL)
            result.faults.append(f"SIGKILL worker {victim}")
        else:
            took = service.terminate()
            service.start()
            result.faults.append(f"gunicorn SIGTERM (exited in {took:.1f}s) and start")


def _analyse(state: dict, result: BrowserResult) -> None:
    result.sse_gave_up = bool(state["sseClosed"])
    result.ws_close_codes = state["wsCloses"]
    result.reconnects = {"sse": state["sseErrors"], "ws": len(state["wsCloses"])}
    for transport in ("sse", "ws"):
        events = state[transport]
        ids = [event[0] for event in events]
        result.duplicates[transport] = len(ids) - len(set(ids))
        seqs, seen, latencies = [], set(), []
        for event_id, data, arrived_ms in events:
            if event_id in seen:
                continue
            seen.add(event_id)
            seq, stamp, _ = data.split(" ", 2)
            seqs.append(int(seq))
            latencies.append(arrived_ms - int(stamp) / 1e6)
        result.received[transport] = len(seqs)
        result.missing[transport] = sorted(set(range(result.messages)) - set(seqs))
        result.reordered[transport] = sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        latencies.sort()
        if latencies:
            result.latency_ms[transport] = round(latencies[int(0.99 * (len(latencies) - 1))], 1)

"""Asyncio clients for the chaos runs: resuming readers, slow readers, churning clients.

A `ResumingClient` behaves like a page: SSE reconnects the way EventSource does (after the
server's `retry:`, sending `Last-Event-ID`), WebSocket the way the demo page does (capped,
jittered backoff, `?last_event_id=`). Both deduplicate by event id and record every
payload's sequence number, so the run can say exactly what is missing, duplicated or out
of order. Both give up on a connection that stays silent for `idle_s` (no event, no
heartbeat, no ping): that is how a client notices a connection cut without a word.

Payloads are `"<seq> <time_ns> <padding>"`: the producer's sequence number for that user
and the moment it was pushed (for latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass

from chaos.record import Record
from chaos.sockets import Slowness, abort, open_stream
from chaos.wire import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Dechunker,
    HeadParser,
    SseParser,
    WsParser,
    close_code,
    sse_request,
    ws_client_frame,
    ws_request,
)

#: What EventSource waits before reconnecting when the server never said `retry:`.
DEFAULT_RETRY_MS = 1000
#: The demo page's WebSocket backoff: base, doubled per failed attempt, capped (ms).
WS_BASE_MS, WS_RESTART_BASE_MS, WS_CAP_MS = 250, 1000, 5000
#: Close codes after which the page waits longer: service restart, try again later.
WS_RESTART_CODES = (1012, 1013)


class SessionEnd(Exception):
    """A connection ended; `reason` says how (eof, idle, refused, closed:<code>, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResumingClient:
    """One tab's stream of one user, reconnecting and resuming until stopped."""

    def __init__(
        self,
        port: int,
        record: Record,
        *,
        idle_s: float,
        first_cursor: str | None = None,
        slowness: Slowness | None = None,
    ) -> None:
        self.port = port
        self.record = record
        self.idle_s = idle_s
        self.cursor_override = first_cursor
        self.slowness = slowness
        self.slow_reading = slowness is not None  # reading slowly (first connection only)
        self.slow_outcome: str | None = None  # how the slow connection ended
        self.connected = False
        self.cut = False  # the current connection was cut silently (by the proxy)
        self.local_port: int | None = None
        self.retry_ms = DEFAULT_RETRY_MS
        self.attempt = 0
        self.last_close_code: int | None = None
        self.idle_noticed_at: float | None = None
        self.slow_seconds = 0.0

    @property
    def cursor(self) -> str | None:
        return self.record.last_id or self.cursor_override

    async def run(self, stop: asyncio.Event, deadline: float) -> None:
        """Connect, read, reconnect, until `stop` is set or the loop time passes `deadline`."""
        loop = asyncio.get_running_loop()
        while not stop.is_set() and loop.time() < deadline:
            opened = loop.time()
            reason = await self._one_session(stop)
            if self.slowness is not None and self.slow_outcome is None:
                phase = "while reading slowly" if self.slow_reading else "after draining"
                self.slow_outcome = f"{reason} {phase}"
                self.slow_reading = False
                self.slow_seconds = loop.time() - opened
            if stop.is_set():
                return
            self.record.reconnects += 1
            delay = self._reconnect_delay(reason)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _reconnect_delay(self, reason: str) -> float:
        if self.record.transport == "sse":
            return self.retry_ms / 1000  # EventSource: the server's retry, nothing more
        base = WS_RESTART_BASE_MS if self.last_close_code in WS_RESTART_CODES else WS_BASE_MS
        delay = min(WS_CAP_MS, base * 2**self.attempt) * random.uniform(0.5, 1.5)
        self.attempt += 1
        return delay / 1000

    async def _one_session(self, stop: asyncio.Event) -> str:
        self.record.new_session()
        self.last_close_code = None
        writer = None
        try:
            reader, writer = await open_stream(
                self.port, self.slowness if self._slow_now() else None
            )
            self.local_port = writer.get_extra_info("sockname")[1]
            self.cut = False
            if self.record.transport == "sse":
                await self._sse(reader, writer, stop)
            else:
                await self._ws(reader, writer, stop)
            return "stopped"
        except SessionEnd as end:
            return end.reason
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
            return f"error:{type(error).__name__}"
        finally:
            self.connected = False
            if writer is not None:
                abort(writer, reset=False)

    def _slow_now(self) -> bool:
        return self.slow_reading and self.slow_outcome is None

    async def _chunks(self, reader: asyncio.StreamReader, stop: asyncio.Event):
        """Bytes as they arrive; slowly while in the slow phase; SessionEnd on EOF or idle."""
        slow_until = None
        if self._slow_now():
            slow_until = asyncio.get_running_loop().time() + self.slowness.max_s
        while not stop.is_set():
            if slow_until is not None and self._slow_now():
                if asyncio.get_running_loop().time() > slow_until:
                    self.slow_reading = False  # bounded: drain at full speed from here
                else:
                    await asyncio.sleep(self.slowness.interval_s)
                    data = await reader.read(self.slowness.chunk)
                    if not data:
                        raise SessionEnd("eof")
                    yield data
                    continue
            try:
                data = await asyncio.wait_for(reader.read(2**16), self.idle_s)
            except TimeoutError:
                self.record.idle_timeouts += 1
                self.idle_noticed_at = time.time()
                raise SessionEnd("idle") from None
            if not data:
                raise SessionEnd("eof")
            yield data

    async def _head(self, chunks, expected: int):
        parser = HeadParser()
        async for data in chunks:
            head, rest = parser.feed(data)
            if head is None:
                continue
            if head.status != expected:
                self.record.refusals[head.status] += 1
                raise SessionEnd(f"refused:{head.status}")
            return head, rest
        raise SessionEnd("stopped")

    async def _sse(self, reader, writer, stop) -> None:
        params = {"user_id": self.record.user}
        writer.write(sse_request("/stream", params, self.cursor))
        chunks = self._chunks(reader, stop)
        head, rest = await self._head(chunks, 200)
        self.connected = True
        chunked = "chunked" in head.headers.get("transfer-encoding", "")
        dechunker = Dechunker() if chunked else None
        parser = SseParser()
        data = rest
        while True:
            body = dechunker.feed(data) if dechunker else data
            for event in parser.feed(body):
                if event.event == "message":
                    self.record.accept(event.id, event.data)
                elif event.event == "reset" and event.id:
                    self.record.reset(event.id)
            if parser.retry_ms is not None:
                self.retry_ms = parser.retry_ms
            if dechunker is not None and dechunker.finished:
                restart = "restart" in (parser.last_comment or "")
                raise SessionEnd("ended:restart" if restart else "ended")
            data = await anext(chunks, None)
            if data is None:
                return

    async def _ws(self, reader, writer, stop) -> None:
        params = {"user_id": self.record.user}
        if self.cursor:
            params["last_event_id"] = self.cursor
        writer.write(ws_request("/ws", params))
        chunks = self._chunks(reader, stop)
        _, rest = await self._head(chunks, 101)
        self.connected = True
        self.attempt = 0
        parser = WsParser()
        data = rest
        while True:
            for frame in parser.feed(data):
                if frame.opcode == OP_TEXT:
                    self._ws_message(json.loads(frame.payload))
                elif frame.opcode == OP_PING:
                    writer.write(ws_client_frame(OP_PONG, frame.payload))
                elif frame.opcode == OP_CLOSE:
                    code = close_code(frame.payload)
                    self.last_close_code = code
                    self.record.closes[code] += 1
                    with contextlib.suppress(OSError):
                        writer.write(ws_client_frame(OP_CLOSE, frame.payload[:2]))
                    raise SessionEnd(f"closed:{code}")
            data = await anext(chunks, None)
            if data is None:
                return

    def _ws_message(self, frame: dict) -> None:
        if frame.get("reset"):
            self.record.reset(frame["id"])
        else:
            self.record.accept(frame["id"], frame["data"])


@dataclass(frozen=True)
class Churn:
    """One client that connects and drops: mid-request, after some bytes, or after a while."""

    start_s: float
    user: str
    transport: str
    style: str  # "request" | "bytes" | "time"
    amount: float  # bytes of the request sent / bytes read / seconds connected
    reset: bool  # drop with a RST rather than a FIN
    from_start: bool  # ask for the whole history (more bytes in flight to cut through)


#: Seconds a churning client may live, whatever its plan says.
CHURN_MAX_S = 5.0


async def churn_once(port: int, plan: Churn) -> str:
    """Run one churning client; returns what happened (for the tally)."""
    try:
        return await asyncio.wait_for(_churn(port, plan), CHURN_MAX_S)
    except TimeoutError:
        return "timed out"
    except (OSError, asyncio.IncompleteReadError) as error:
        return f"error:{type(error).__name__}"


async def _churn(port: int, plan: Churn) -> str:
    reader, writer = await open_stream(port)
    try:
        params = {"user_id": plan.user}
        if plan.transport == "sse":
            request = sse_request("/stream", params, "0-0" if plan.from_start else None)
        else:
            if plan.from_start:
                params["last_event_id"] = "0-0"
            request = ws_request("/ws", params)
        if plan.style == "request":
            writer.write(request[: int(plan.amount) % len(request)])
            await writer.drain()
            return "dropped mid-request"
        writer.write(request)
        if plan.style == "bytes":
            got = 0
            while got < plan.amount:
                data = await reader.read(int(plan.amount) - got)
                if not data:
                    return "server closed first"
                got += len(data)
            return "dropped mid-stream"
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_drain_forever(reader), plan.amount)
        return "dropped after a while"
    finally:
        abort(writer, reset=plan.reset)


async def _drain_forever(reader: asyncio.StreamReader) -> None:
    while await reader.read(2**16):
        pass

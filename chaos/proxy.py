"""A small fault-injecting TCP proxy on 127.0.0.1, for connections that die without a word.

`cut(port, mode)` silences the connection whose client side is `port`: from then on
nothing passes in either direction and neither end is told. Bytes keep being read and
dropped, so neither side sees back-pressure, exactly as when a NAT forgets a flow or a
cable is pulled. What happens next is up to the two ends' heartbeats:

- `mode="drop"`: the proxy stays silent for good. Only a protocol heartbeat that expects
  an answer (WebSocket ping/pong) lets the server notice.
- `mode="reset"`: the first bytes the server writes after the cut (a heartbeat) are
  answered, `reset_after_s` later, with a RST: what the server's kernel reports when its
  retransmissions of that heartbeat time out. Loopback cannot lose packets, so this
  stands in for the retransmission timeout; it still takes a write to find out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from chaos.sockets import HOST, abort

#: Bytes read per hop.
CHUNK = 2**16


@dataclass
class Pair:
    """One proxied connection."""

    client_port: int
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]
    mode: str | None = None  # None while healthy, else "drop" / "reset"
    cut_at: float | None = None
    upstream_gone_at: float | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port> until told to cut."""

    def __init__(self, upstream_port: int, reset_after_s: float = 1.0) -> None:
        self.upstream_port = upstream_port
        self.reset_after_s = reset_after_s
        self.pairs: dict[int, Pair] = {}
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self, client_port: int, mode: str) -> Pair | None:
        """Silence the connection from `client_port`; None if there is no such connection."""
        pair = self.pairs.get(client_port)
        if pair is None or pair.mode is not None:
            return None
        pair.mode, pair.cut_at = mode, time.time()
        return pair

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self.pairs.values()):
            for task in pair.tasks:
                task.cancel()
            for _, writer in (pair.client, pair.upstream):
                abort(writer, reset=False)
        self.pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = writer.get_extra_info("peername")[1]
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(HOST, self.upstream_port), 5)
        except (TimeoutError, OSError):
            abort(writer)
            return
        pair = Pair(client_port, (reader, writer), upstream)
        self.pairs[client_port] = pair
        pair.tasks = [
            asyncio.create_task(self._pump(pair, reader, upstream[1], toward_client=False)),
            asyncio.create_task(self._pump(pair, upstream[0], writer, toward_client=True)),
        ]
        await asyncio.gather(*pair.tasks, return_exceptions=True)
        self.pairs.pop(client_port, None)
        for _, end in (pair.client, pair.upstream):
            abort(end, reset=False)

    async def _pump(
        self,
        pair: Pair,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        toward_client: bool,
    ) -> None:
        try:
            while True:
                data = await source.read(CHUNK)
                if not data:
                    break
                if pair.mode is None:
                    sink.write(data)
                    await sink.drain()
                elif toward_client and pair.mode == "reset":
                    pair.mode = "resetting"
                    asyncio.get_running_loop().call_later(
                        self.reset_after_s, self._reset_upstream, pair
                    )
        except (OSError, asyncio.IncompleteReadError):
            pass
        if toward_client and pair.upstream_gone_at is None:
            pair.upstream_gone_at = time.time()
        if pair.mode is None:
            # A healthy hop passes the close on, as a FIN.
            with contextlib.suppress(OSError):
                if sink.can_write_eof():
                    sink.write_eof()
            abort(sink, reset=False)
        # A cut one does not: the other end must find out by itself.

    def _reset_upstream(self, pair: Pair) -> None:
        abort(pair.upstream[1], reset=True)
        if pair.upstream_gone_at is None:
            pair.upstream_gone_at = time.time()

"""The chaos clients' TCP connections: opened with small buffers for a slow reader, and
dropped at once (as a RST) when a fault asks for it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass

HOST = "127.0.0.1"
#: Seconds a connect and its response head may take.
CONNECT_TIMEOUT_S = 5.0
LINGER_RST = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Slowness:
    """How a slow consumer reads: `chunk` bytes every `interval_s`, for at most `max_s`
    seconds (then it drains at full speed, so every run ends).

    Its socket has a small receive buffer and a small MSS: on loopback (MTU 64 KiB) the
    server's send buffer would otherwise grow to megabytes before a write ever blocks,
    and the outbox limit would never be reached."""

    chunk: int = 64
    interval_s: float = 0.05
    max_s: float = 20.0
    rcvbuf: int = 1024
    mss: int = 536


async def open_stream(
    port: int, slowness: Slowness | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to 127.0.0.1:`port`, with small buffers for a slow reader."""
    if slowness is None:
        return await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=2**16), CONNECT_TIMEOUT_S
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, slowness.rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, slowness.mss)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (HOST, port)), CONNECT_TIMEOUT_S
        )
    except BaseException:
        sock.close()
        raise
    # A small stream buffer too, or asyncio would read ahead of the slow consumer.
    return await asyncio.open_connection(sock=sock, limit=256)


def abort(writer: asyncio.StreamWriter, reset: bool = True) -> None:
    """Drop a connection at once; with `reset`, as a RST (no FIN, nothing flushed)."""
    sock = writer.get_extra_info("socket")
    if reset and sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    writer.transport.abort()

"""Processes the harness starts and watches: free ports, children from /proc, teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    """Live child pids of `pid` (a gunicorn master's workers), from /proc; zombies, which
    have exited and wait to be reaped, are left out."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(entry.path, "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def stop_process(
    process: subprocess.Popen | None,
    sig: int = signal.SIGTERM,
    timeout: float = 20.0,
) -> None:
    """Send `sig` and wait up to `timeout` seconds for the exit; SIGKILL after that.
    Nothing to do for a process that never started or already exited."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

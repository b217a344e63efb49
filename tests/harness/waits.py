"""Waiting on a condition with a deadline, never for a fixed time.

One polling loop serves three callers: tests want a failure at the deadline
(`wait_until`), the benchmarks want to know whether it held and carry on (`wait_for`),
the chaos runs want the last thing seen either way (`poll`). A caller under gevent
without monkey-patching passes `sleep=gevent.sleep` so other greenlets run meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds any single wait in a test may take before it fails.
DEADLINE_S = 10.0


def poll(
    check: Callable[[], tuple[bool, T]],
    timeout: float,
    interval: float = 0.25,
    sleep: Callable[[float], Any] = time.sleep,
) -> tuple[bool, T]:
    """Call `check` until it returns (True, value) or `timeout` passes; (held, last value).

    `check` runs once more at or after the deadline, so a condition met while sleeping
    the last interval still counts."""
    deadline = time.monotonic() + timeout
    while True:
        held, value = check()
        if held or time.monotonic() > deadline:
            return held, value
        sleep(interval)


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    interval: float = 0.05,
    sleep: Callable[[float], Any] = time.sleep,
) -> bool:
    """Whether `condition` became truthy within `timeout` seconds."""
    held, _ = poll(lambda: (bool(condition()), None), timeout, interval, sleep)
    return held


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEADLINE_S,
    interval: float = 0.02,
    what: str = "",
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Poll `predicate` until it returns a truthy value (returned), or fail at the deadline
    with an AssertionError naming `what`."""

    def check() -> tuple[bool, T]:
        value = predicate()
        return bool(value), value

    held, value = poll(check, timeout, interval, sleep)
    if not held:
        raise AssertionError(f"timed out waiting for {what or predicate}")
    return value

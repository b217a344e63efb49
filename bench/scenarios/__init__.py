"""The bench's scenarios, one module each; `run(bench)` measures and returns its JSON part.

In the order a full run takes them (plans.SCENARIOS): raw, shapes, capacity, backlog,
connections.
"""

from __future__ import annotations

from collections.abc import Callable

from scenarios import backlog, capacity, connections, raw, shapes

RUNS: dict[str, Callable] = {
    "raw": raw.run,
    "shapes": shapes.run,
    "capacity": capacity.run,
    "backlog": backlog.run,
    "connections": connections.run,
}

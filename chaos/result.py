"""A chaos run's outcome and its verdict: what makes the run a failure, in words."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.config import ChaosConfig
from chaos.faults import Fault


@dataclass
class ChaosResult:
    config: ChaosConfig
    faults: list[Fault] = field(default_factory=list)
    producer: dict = field(default_factory=dict)
    delivery: dict = field(default_factory=dict)
    clients: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    workers: dict = field(default_factory=dict)
    duration_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds each part took
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Everything that makes this run a failure, in words."""
        found = list(self.errors)
        d = self.delivery
        if d.get("lost", 1):
            found.append(f"{d.get('lost')} messages lost ({d.get('lost_examples')})")
        if d.get("reordered", 1):
            found.append(f"{d.get('reordered')} out of order ({d.get('reorder_examples')})")
        if d.get("dup_ids_same_connection", 0):
            found.append(f"{d['dup_ids_same_connection']} duplicates within one connection")
        if not self.after.get("ok", False):
            found.append(f"not back to baseline: {self.after.get('why')}")
        if self.workers.get("wedged"):
            found.append(f"wedged workers: {self.workers['wedged']}")
        for cut in self.clients.get("silent_cuts", []):
            if cut.get("client_noticed_s") is None or cut.get("server_released_s") is None:
                found.append(f"a silent cut was not noticed: {cut}")
        return found

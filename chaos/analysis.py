"""What a chaos run delivered: every client's numbered messages against what the
producer had acknowledged and what Redis still holds; lost (and why), reordered and
duplicated messages, and the latency of the regular clients."""

from __future__ import annotations

import statistics

from chaos.config import MAILBOX_TEMPLATE
from chaos.producer import ProducerResult
from chaos.result import ChaosResult
from push.model.keys import user_keys
from push.storage.store import Store
from tests.harness.stats import at_rank


def persisted(redis_url: str, users: list[str]) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """What Redis holds at the end, per user: the sequence numbers in the history (read
    with the service's own Store), and those still waiting in the mailbox or pending
    (none, once every client has caught up)."""
    store = Store(redis_url, pool_size=2, block_s=1.0)
    kept, queued = {}, {}
    try:
        for user in users:
            keys = user_keys(user, MAILBOX_TEMPLATE)
            entries, _ = store.read_after(keys, "0-0", 1_000_000)
            kept[user] = {_seq(entry.data) for entry in entries}
            waiting = store.redis.lrange(keys.mailbox, 0, -1) + store.redis.lrange(
                keys.pending, 0, -1
            )
            queued[user] = {_seq(raw.decode()) for raw in waiting}
    finally:
        store.close()
    return kept, queued


def _seq(payload: str) -> int:
    return int(payload.split(" ", 1)[0])


def analyse(
    records: list[dict],
    produced: ProducerResult,
    users: list[str],
    kept: dict[str, set[int]],
    queued: dict[str, set[int]],
    result: ChaosResult,
) -> dict:
    """Lost, reordered and duplicated messages over every client, and latency.

    A message a client lacks goes in one of four boxes: stuck (still in the mailbox or
    pending when the run ended: never moved), lost by Redis (acknowledged to the producer,
    yet neither queued nor in the user's history: Redis dropped the write; under
    `everysec` that is the price of its SIGKILL, counted apart, under `always` a loss like
    any other), skipped at a resume (the gap ends exactly where a new connection of that
    client began: the service resumed it past its cursor), or lost otherwise."""
    expected = produced.expected_per_user(users)
    boxes: dict[str, set] = {
        "stuck": set(),
        "redis": set(),
        "skipped_on_resume": set(),
        "other": set(),
    }
    missed, reorders, latencies, incomplete = 0, [], [], []
    for record in records:
        user = record["user"]
        missing = set(range(expected[user])) - set(record["seqs"])
        missed += len(missing)
        if missing:
            incomplete.append(_describe(record, missing))
        resumed_at = set(record["session_firsts"])
        for run in _runs(missing):
            for seq in run:
                if seq in queued[user]:
                    box = "stuck"
                elif seq not in kept[user]:
                    box = "redis"
                elif run[-1] + 1 in resumed_at:
                    box = "skipped_on_resume"
                else:
                    box = "other"
                boxes[box].add((user, seq))
        reorders += [(user, *pair) for pair in record["reorders"]]
        if record["kind"] == "regular":
            latencies += record["latencies_ms"]
    latencies.sort()
    if result.config.fsync != "everysec":  # only everysec may drop acknowledged writes
        boxes["other"] |= boxes.pop("redis")
        boxes["redis"] = set()
    lost = boxes["skipped_on_resume"] | boxes["other"]
    dropped_by_redis = sum(len(set(range(expected[u])) - kept[u]) for u in users)
    return {
        "deliveries_expected": sum(expected[r["user"]] for r in records),
        "deliveries_missed": missed,
        "incomplete_clients": incomplete[:20],
        "lost": len(lost),
        "lost_skipped_on_resume": len(boxes["skipped_on_resume"]),
        "lost_stuck_in_mailbox": len(boxes["stuck"]),
        "lost_other": len(boxes["other"]),
        "lost_examples": sorted(lost)[:10],
        "lost_to_redis_sigkill": len(boxes["redis"]),
        "not_in_redis_at_end": dropped_by_redis,
        "still_queued_at_end": sum(len(q) for q in queued.values()),
        "reordered": len(reorders),
        "reorder_examples": reorders[:10],
        "dup_ids_across_reconnects": sum(r["dup_ids_across_reconnects"] for r in records),
        "dup_ids_same_connection": sum(r["dup_ids_same_connection"] for r in records),
        "dup_seqs": sum(r["dup_seqs"] for r in records),
        "resets": sum(r["resets"] for r in records),
        "reconnects": sum(r["reconnects"] for r in records),
        "idle_timeouts": sum(r["idle_timeouts"] for r in records),
        "refusals": _sum_counts(r["refusals"] for r in records),
        "closes": _sum_counts(r["closes"] for r in records),
        "latency_ms": latency_summary(latencies),
    }


def _runs(numbers: set[int]) -> list[list[int]]:
    """Sorted runs of consecutive numbers: {1, 2, 3, 7} -> [[1, 2, 3], [7]]."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return runs


def _describe(record: dict, missing: set[int]) -> str:
    """One incomplete client in a line: who, how it connected, what it lacks."""
    ranges = _runs(missing)
    spans = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in ranges[:5])
    return (
        f"{record['kind']} {record['transport']} of {record['user']}: missing {len(missing)} "
        f"({spans}), got {len(record['seqs'])}, sessions {record['sessions']} "
        f"starting at {record['session_firsts'][:8]}, "
        f"closes {record['closes']}, refusals {record['refusals']}"
    )


def _sum_counts(counts) -> dict:
    total: dict = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return total


def latency_summary(ordered_ms: list[float]) -> dict:
    """p50, p99, max and mean of latencies (milliseconds, sorted), to 0.1 ms; {} if none."""
    if not ordered_ms:
        return {}
    return {
        "p50": round(at_rank(ordered_ms, 0.5), 1),
        "p99": round(at_rank(ordered_ms, 0.99), 1),
        "max": round(ordered_ms[-1], 1),
        "mean": round(statistics.fmean(ordered_ms), 1),
    }

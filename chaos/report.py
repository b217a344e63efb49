"""chaos/RESULTS.md from the results of `make chaos`: one table, then the details."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections import Counter

from chaos.browser import BrowserResult
from chaos.config import SERVICE_SETTINGS
from chaos.result import ChaosResult

#: The faults the chaos runs found, each with its regression test in tests/test_chaos.py.
FAULTS = [
    (
        "test_a_resume_while_the_pump_reads_skips_to_the_other_connections_cursor",
        "A connection that resumes from an older id on a worker where its user already has "
        "a live connection can be moved past its gap: if the user's pump is between "
        "computing `min(cursor)` and offering (it waits on Redis in `read_after`), the "
        "entries it offers start after the *other* connections' cursor, and "
        "`Tab.offer` takes them and advances its cursor. The skipped messages never "
        "reach that connection. This is every loss counted as *skipped on resume* below.",
    ),
    (
        "test_a_reader_that_stops_reading_starves_the_other_tabs_of_its_user",
        "A connection cut for a full outbox while its writer is blocked in `sendall` stays "
        "in `user.tabs` with a frozen cursor; `LocalUser._dispatch` reads the "
        "same `PUSH_DRAIN_BATCH` entries after it again and again (a hot loop on Redis) and "
        "the user's other connections on that worker get nothing until the slow reader has "
        "read what was already written, or hangs up.",
    ),
    (
        "test_a_reader_that_stops_reading_is_disconnected_once_its_outbox_overflows",
        "The outbox limit never disconnects a reader that stopped reading: "
        "`Tab.close(OUTBOX_FULL)` only flags it, the writer stays blocked in "
        "`sendall` (gunicorn's client sockets have no timeout) and the socket, greenlet and "
        "presence lease are held as long as the peer keeps its window closed; a SIGTERM "
        "then waits for gunicorn's graceful timeout.",
    ),
    (
        "test_a_mover_lease_left_while_redis_was_away_does_not_block_the_user",
        "A user's mail can stop moving for an hour. When the last connection of a user in "
        "a worker closes while Redis is away, `Mover._release` cannot delete the mover "
        "lease (and when a Redis error has just set `holding = False`, it does not even "
        "try); the lease then names a mover that no longer exists in a live worker, "
        "`Mover._acquire` never takes over a lease of its own or of a live worker, and it "
        "only expires after `MOVER_LEASE_SAFETY_MS` (1 h). Every message counted as *stuck "
        "in the mailbox* below.",
    ),
    (
        "test_an_outbox_smaller_than_the_drain_batch_still_lets_a_client_catch_up",
        "With `PUSH_OUTBOX_MAX` below `PUSH_DRAIN_BATCH` (both valid alone; the batch "
        "defaults to 200), a client more than `PUSH_OUTBOX_MAX` messages behind is cut "
        "before anything is written, at every reconnect, and never catches up. The chaos "
        "runs use 50 / 25 to stay clear of it.",
    ),
]


def render(runs: list[ChaosResult], browser: BrowserResult | None, took_s: float, note: str) -> str:
    lines = [
        "# Chaos results",
        "",
        f"`make chaos` on {dt.date.today().isoformat()}, {os.cpu_count()} cores "
        f"({platform.machine()}), {took_s / 60:.1f} minutes in all{note}. "
        "Every message carries its user's sequence number; every client records what "
        "arrived, deduplicated by event id. Reproduce with `make chaos`; the short version "
        "is `tests/test_chaos.py` in `make test`.",
        "",
        "| run | faults injected | messages | lost | lost to Redis's SIGKILL | reordered "
        "| duplicates | reconnects | p99 latency | leaks | wedged workers |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(run) for run in runs]
    if browser is not None:
        lines.append(_browser_row(browser))
    lines += ["", *_verdict(runs, browser), ""]
    for run in runs:
        lines += _details(run)
    if browser is not None:
        lines += _browser_details(browser)
    lines += ["## Faults found", ""]
    for name, text in FAULTS:
        lines += [f"- **`{name}`** (xfail, strict): {text}", ""]
    lines += _method()
    return "\n".join(lines) + "\n"


def _faults_text(run: ChaosResult) -> str:
    kinds = Counter(f.kind for f in run.faults)
    c = run.config
    cuts = len(run.clients.get("silent_cuts", []))
    return (
        f"{kinds['kill-worker']} worker SIGKILLs, {kinds['redis-sigkill']} Redis SIGKILLs, "
        f"{kinds['redis-shutdown']} Redis SHUTDOWNs, {run.clients.get('churn_started', 0)} "
        f"churning clients, {c.slow} slow consumers, {cuts} silent cuts"
    )


def _label(config) -> str:
    """A run's name in the tables: its fsync setting and how its workers watch mailboxes."""
    return f"`appendfsync {config.fsync}`, `PUSH_MAILBOX_WATCH={config.watch}`"


def _row(run: ChaosResult) -> str:
    c, d = run.config, run.delivery
    if not d:
        return f"| {_label(c)} | (run failed: {'; '.join(run.errors)}) |" + " |" * 9
    dups = d["dup_ids_across_reconnects"]
    lost = f"**{d['lost']}**" if d["lost"] else "0"
    if d["lost"]:
        lost += (
            f" ({d['lost_skipped_on_resume']} skipped on resume, "
            f"{d['lost_stuck_in_mailbox']} stuck in the mailbox, {d['lost_other']} other)"
        )
    to_kill = str(d["lost_to_redis_sigkill"]) if c.fsync == "everysec" else "n/a"
    leaks = "none" if run.after.get("ok") else "**yes**"
    wedged = "none" if not run.workers.get("wedged") else f"**{run.workers['wedged']}**"
    return (
        f"| {_label(c)} | {_faults_text(run)} | {run.producer.get('acked', 0):,} "
        f"to {c.users} users ({d['deliveries_expected']:,} deliveries to "
        f"{c.users * c.clients_per_user} + {c.slow} clients) | {lost} | {to_kill} "
        f"| {d['reordered']} | {dups} by id; {d['dup_seqs']} by payload (producer retries) "
        f"| {d['reconnects']:,} | {d['latency_ms'].get('p99', '?')} ms | {leaks} | {wedged} |"
    )


def _browser_row(b: BrowserResult) -> str:
    if b.error:
        return f"| Chromium | (run failed: {b.error}) |" + " |" * 9
    lost = sum(len(m) for m in b.missing.values())
    return (
        f"| Chromium (EventSource + WebSocket) | {', '.join(b.faults)} | {b.messages} per "
        f"transport | {lost} | n/a | {sum(b.reordered.values())} "
        f"| {sum(b.duplicates.values())} | {b.reconnects.get('sse', 0)} SSE, "
        f"{b.reconnects.get('ws', 0)} WS | SSE {b.latency_ms.get('sse', '?')} ms, "
        f"WS {b.latency_ms.get('ws', '?')} ms | n/a | n/a |"
    )


def _verdict(runs: list[ChaosResult], browser: BrowserResult | None) -> list[str]:
    problems = [f"{_label(r.config)}: {p}" for r in runs for p in r.problems()]
    if browser is not None and not browser.ok:
        problems.append(f"browser: {browser}")
    if not problems:
        return ["**Verdict: pass.** Nothing lost, nothing reordered, nothing leaked."]
    return ["**Verdict: fail.**", "", *[f"- {p}" for p in problems]]


def _details(run: ChaosResult) -> list[str]:
    c, d = run.config, run.delivery
    lines = [
        f"## {_label(c)} in detail",
        "",
        f"- {c.messages:,} messages at {c.rate:.0f}/s over {c.produce_s:.0f} s to {c.users} "
        f"users ({c.fat_users} of them with {c.fat_pad}-byte payloads, for the slow "
        f"consumers), {c.clients_per_user} clients each (SSE and WebSocket mixed); seed "
        f"{c.seed}. Run time {run.duration_s:.0f} s: "
        + ", ".join(f"{k} {v} s" for k, v in run.phases.items())
        + ".",
    ]
    if run.errors:
        lines.append(f"- Errors: {run.errors}")
    if d:
        lines += [
            f"- Latency (push to the client's read, regular clients): {d['latency_ms']}.",
            f"- Refused connects: {d['refusals'] or 'none'}; WebSocket close codes: "
            f"{d['closes'] or 'none'}; idle timeouts: {d['idle_timeouts']}; resets: "
            f"{d['resets']}.",
            f"- Duplicates within one connection: {d['dup_ids_same_connection']}; producer "
            f"retries: {run.producer.get('retried')} (Redis errors met: "
            f"{run.producer.get('errors')}).",
        ]
        if d["incomplete_clients"]:
            lines.append("- Clients that missed messages (first 20):")
            lines += [f"  - {text}" for text in d["incomplete_clients"]]
    lines += [
        "- Faults: "
        + "; ".join(f"{f.kind} at {f.done_at:.1f} s ({f.detail})" for f in run.faults)
        + ".",
        f"- Slow consumers, how their first (slow) connection ended: "
        f"{dict(run.clients.get('slow_outcomes', {}))}.",
        f"- Churning clients: {run.clients.get('churn', {})}.",
    ]
    for cut in run.clients.get("silent_cuts", []):
        lines.append(
            f"- Silent cut of a {cut['transport']} client (proxy mode `{cut['mode']}`): "
            f"the client noticed after {_s(cut.get('client_noticed_s'))}, the server let go "
            f"of its socket after {_s(cut.get('server_released_s'))}."
        )
    b, a = run.baseline, run.after
    if b and a:
        lines += [
            f"- Idle baseline per worker: {b['greenlets']} greenlets, {b['other_fds']} "
            f"descriptors besides sockets to clients and Redis; Redis clients "
            f"{b['redis_clients']}.",
            f"- After the run, idle again: greenlets {a['greenlets']}, connections "
            f"{a['connections']}, descriptors {a['fds']}, Redis clients {a['redis_clients']} "
            "(the pool keeps up to `PUSH_REDIS_POOL_SIZE` per worker; movers must be 0).",
            f"- Workers: {run.workers.get('booted')} booted in all, stats never older than "
            f"{run.workers.get('max_stats_age_s')} s, "
            f"wedged: {run.workers.get('wedged') or 'none'}.",
        ]
    return [*lines, ""]


def _s(value) -> str:
    return "never (within 30 s)" if value is None else f"{value:.1f} s"


def _browser_details(b: BrowserResult) -> list[str]:
    return [
        "## Chromium in detail",
        "",
        f"- A page of the service's origin opens the browser's own EventSource and a "
        f"WebSocket with the demo page's reconnect logic; {b.messages} messages each. "
        f"Faults: {'; '.join(b.faults)}. Took {b.duration_s:.0f} s.",
        f"- EventSource reconnects that carried the browser's own `Last-Event-ID`: "
        f"{b.resumed_with_last_event_id}; EventSource gave up: {b.sse_gave_up}.",
        f"- WebSocket close codes seen: {b.ws_close_codes}.",
        f"- Missing: {b.missing}; out of order: {b.reordered}; duplicate ids: {b.duplicates}.",
        "",
    ]


def _method() -> list[str]:
    settings = ", ".join(f"`{k}={v}`" for k, v in SERVICE_SETTINGS.items())
    return [
        "## How it is measured",
        "",
        f"- The service runs as in production (gunicorn, 2 gevent workers) with {settings}; "
        "chaos/gunicorn.conf.py is the project's config plus a greenlet per worker that "
        "writes its live greenlets, users, connections and an in-process `/healthz` to a "
        "file every second (a file left unrefreshed for 5 s is a wedged worker).",
        "- Clients are raw asyncio sockets in a process of their own; SSE ones reconnect "
        "after the server's `retry:` with `Last-Event-ID`, WebSocket ones with the demo "
        "page's backoff and `?last_event_id=`. Any client silent for 5 s (no event, "
        "heartbeat or ping) reconnects.",
        "- Lost: a message a client lacks at the end. Under `everysec`, one that Redis "
        "acknowledged to the producer but no longer holds in the user's history at the end "
        "is counted as Redis's own loss instead (the producer's pushes and the history are "
        "compared message by message). A SIGKILLed Redis has already written every "
        "acknowledged command to the kernel (only the fsync is deferred), so that column "
        "stays 0 unless an fsync fell behind; losing the last second takes a machine crash.",
        "- Skipped on resume: the missing run ends exactly where one of that client's "
        "connections began, i.e. the service resumed it past its cursor.",
        "- Slow consumers start from the beginning of a user's history with a 1 KiB receive "
        "buffer and a 536-byte MSS (or the server's send buffer grows to megabytes on "
        "loopback), read 64 bytes every 50 ms for up to 20 s, then read at full speed, "
        "resume, and must end with every message.",
        "- Silent cuts go through a loopback TCP proxy that stops forwarding without telling "
        "either end. For SSE the proxy answers the server's first write after the cut with "
        "a RST one second later (standing in for TCP's retransmission timeout, which "
        "loopback cannot produce); for WebSocket it stays silent and only the server's "
        "ping/pong can notice.",
        "- Leaks: once the clients are gone, every worker must be back to its idle baseline "
        "(no connection, user, client socket, mover connection; no more greenlets or other "
        "descriptors than before the run) within 30 s.",
        "",
    ]

# ruff: noqa: RUF001
"""Results -> <date>.json, the Markdown table and the PNG plots (matplotlib, Agg).

.venv/bin/python bench/report.py bench/results/2025-11-26.json   # redraw from a JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PUSH, PEER = "push-sse", "flask-sse"
#: Seconds the probe message had to reach every stream (run.py's PROBE_S).
PROBE_S = 5.0
COLORS = {
    "push-sse": "#1f77b4",
    "push-ws": "#2ca02c",
    "push-sse-block": "#9467bd",
    "flask-sse": "#d62728",
}


def get(results: dict, *path):
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def span(stat: dict | None, digits: int = 0, unit: str = "") -> str:
    """`median (min-max)` of a summary."""
    if not stat:
        return "n/a"
    return (
        f"**{fmt(stat['median'], digits, unit)}** "
        f"({fmt(stat['min'], digits)}–{fmt(stat['max'], digits)})"
    )


def ratio(a: dict | None, b: dict | None, digits: int = 2) -> str:
    if not a or not b or not b["median"]:
        return "n/a"
    return f"{a['median'] / b['median']:.{digits}f}×"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**not met**"


#: What issue 4 measured Flask-SSE at, on the machine it was written on: 200 users x 5
#: tabs under gunicorn with 2 gevent workers.
REFERENCE_PEER_DELIVERIES_PER_S = 45_000
REFERENCE_PEER_US_PER_DELIVERY = 25.0
#: The last full run before the mailbox watcher (2026-11-27): 200 users x 5 tabs.
LAST_RATIO_5TABS = 7.72
LAST_US_5TABS = 7.7
#: Issue 17's bounds.
WATCHER_CONNECTIONS_PER_WORKER = 20
CAPACITY_KB_PER_STREAM = 25.0
P50_SLACK_MS = 0.2


def shape(results: dict, tabs: int) -> dict:
    return get(results, "scenarios", "shapes", f"x{tabs}") or {}


def tp_of(results: dict, tabs: int, label: str) -> dict:
    return get(shape(results, tabs), label, "throughput") or {}


def at(stages: dict | None, streams: int):
    """A stage's figure: JSON keeps its keys as text, the bench's own dict as numbers."""
    if not stages:
        return None
    return stages.get(streams, stages.get(str(streams)))


def lat_of(results: dict, tabs: int, label: str, streams: int) -> dict:
    return at(get(shape(results, tabs), label, "latency"), streams) or {}


def machine_speed(results: dict) -> list[str]:
    """How fast this machine ran the peer against issue 4's reference measurement, so
    that absolute figures can be read against it."""
    peer_rate = get(tp_of(results, 5, PEER), "deliveries_per_s", "median")
    peer_us = get(tp_of(results, 5, PEER), "app_cpu_us_per_delivery", "median")
    if not (peer_rate and peer_us):
        return []
    slower = peer_us / REFERENCE_PEER_US_PER_DELIVERY
    return [
        "",
        f"**This machine's speed.** Here Flask-SSE delivered {peer_rate:,.0f}/s at "
        f"{peer_us:.1f} µs of app CPU each for 200 users × 5 tabs; issue 4 measured it at "
        f"about {REFERENCE_PEER_DELIVERIES_PER_S:,}/s and {REFERENCE_PEER_US_PER_DELIVERY:g} µs "
        f"on its reference machine, so this one did the same work {slower:.1f}× slower. The "
        "ratios against Flask-SSE in the same run are the fair comparison.",
    ]


def _row(target: str, push: str, peer: str, ratio_text: str, met: bool | None) -> dict:
    return {"target": target, "push": push, "peer": peer, "ratio": ratio_text, "met": met}


def targets(results: dict) -> list[dict]:
    """Issue 17's targets: push's figure, the peer's, the ratio, met or not."""
    plan = results["plan"]
    scale = " (quick scale)" if plan["name"] != "full" else ""
    rows = []
    one_users = plan["tp_users_1tab"]
    push_tp, peer_tp = tp_of(results, 1, PUSH), tp_of(results, 1, PEER)
    for key, target, digits, unit, factor, at_least in (
        ("deliveries_per_s", "deliveries/s ≥ 2× Flask-SSE", 0, "/s", 2, True),
        ("redis_cpu_us_per_delivery", "Redis CPU per delivery ≤ Flask-SSE's", 1, " µs", 1, False),
    ):
        mine, theirs = push_tp.get(key), peer_tp.get(key)
        met = None
        if mine and theirs:
            bound = factor * theirs["median"]
            met = mine["median"] >= bound if at_least else mine["median"] <= bound
        rows.append(
            _row(
                f"users × 1 ({one_users:,} users, SSE): {target}" + scale,
                span(mine, digits, unit),
                span(theirs, digits, unit),
                ratio(mine, theirs),
                met,
            )
        )
    for tabs in (1, 5):
        for streams in (plan["lat_small"], plan["lat_large"]):
            push_lat = lat_of(results, tabs, PUSH, streams)
            peer_lat = lat_of(results, tabs, PEER, streams)
            p50, p99 = push_lat.get("p50"), push_lat.get("p99")
            peer50, peer99 = peer_lat.get("p50"), peer_lat.get("p99")
            met = None
            if p50 and p99 and peer50 and peer99:
                met = (
                    p99["median"] <= peer99["median"]
                    and p50["median"] <= peer50["median"] + P50_SLACK_MS
                )
            rows.append(
                _row(
                    f"light load, {streams:,} streams ({streams // tabs:,} users × {tabs}): "
                    f"p99 ≤ Flask-SSE's, p50 ≤ Flask-SSE's + {P50_SLACK_MS:g} ms" + scale,
                    f"p50 {span(p50, 2, ' ms')}, p99 {span(p99, 2, ' ms')}",
                    f"p50 {span(peer50, 2, ' ms')}, p99 {span(peer99, 2, ' ms')}",
                    f"p99 {ratio(p99, peer99)}",
                    met,
                )
            )
    workers = results["machine"]["workers"]
    bound = WATCHER_CONNECTIONS_PER_WORKER * workers
    clients_10k = (get(shape(results, 1), PUSH, "redis_clients") or {}).get(str(plan["lat_large"]))
    cap = get(results, "scenarios", "capacity", PUSH) or {}
    cap_clients = cap.get("redis_clients")
    cells = []
    if clients_10k is not None:
        cells.append(f"**{clients_10k:,}** at {plan['lat_large']:,} users × 1")
    if cap_clients:
        cells.append(f"{span(cap_clients)} at {plan['cap_users']:,} users × 1")
    worst = max(
        [clients_10k] if clients_10k is not None else [],
        default=None,
    )
    if cap_clients:
        worst = max(worst or 0, cap_clients["max"])
    block_10k = at(get(shape(results, 1), "push-sse-block", "redis_clients"), plan["lat_large"])
    rows.append(
        _row(
            f"Redis connections with the watcher ≤ {WATCHER_CONNECTIONS_PER_WORKER} per worker "
            f"(≤ {bound} for {workers} workers), whatever the number of users",
            "; ".join(cells) or "n/a",
            f"blocking movers: {block_10k:,} at {plan['lat_large']:,} users"
            if block_10k is not None
            else "n/a",
            "",
            None if worst is None else worst <= bound,
        )
    )
    if plan["cap_users"]:
        held, kb = cap.get("held"), cap.get("rss_kb_per_conn")
        rows.append(
            _row(
                f"{plan['cap_users']:,} one-stream users held on {workers} workers after the ramp",
                span(held),
                "n/a: two descriptors a stream",
                "",
                None if not held else held["min"] >= plan["cap_users"],
            )
        )
        rows.append(
            _row(
                f"≤ {CAPACITY_KB_PER_STREAM:g} KB of worker RSS per idle stream at "
                f"{plan['cap_users']:,} users × 1",
                span(kb, 1, " KB"),
                "",
                "",
                None if not kb else kb["median"] <= CAPACITY_KB_PER_STREAM,
            )
        )
    five = plan["tp_users_5tabs"]
    push5, peer5 = tp_of(results, 5, PUSH), tp_of(results, 5, PEER)
    rate5, peer_rate5 = push5.get("deliveries_per_s"), peer5.get("deliveries_per_s")
    us5 = push5.get("app_cpu_us_per_delivery")
    ratio5 = rate5["median"] / peer_rate5["median"] if rate5 and peer_rate5 else None
    rows.append(
        _row(
            f"{five} users × 5: no worse than the last full run ({LAST_RATIO_5TABS}× "
            f"Flask-SSE, {LAST_US_5TABS} µs of app CPU per delivery)" + scale,
            f"{span(rate5, 0, '/s')}, {span(us5, 1, ' µs')}",
            span(peer_rate5, 0, "/s"),
            ratio(rate5, peer_rate5),
            None
            if ratio5 is None or not us5
            else ratio5 >= LAST_RATIO_5TABS and us5["median"] <= LAST_US_5TABS,
        )
    )
    return rows


def earlier_targets(results: dict) -> list[dict]:
    """Issue 4's targets, still tracked, from this run's figures."""
    plan = results["plan"]
    conn = get(results, "scenarios", "connections") or {}
    rows = []
    goal = plan["conn_total"]
    for label in ("push-sse", "push-ws"):
        held = get(conn, label, "held")
        rows.append(
            _row(
                f"≥ {goal:,} concurrent {label[5:].upper()} connections on 2 workers "
                f"({plan['conn_tabs']} a user; ramp ≤ {plan['conn_max_s']:g} s)",
                span(held),
                span(get(conn, PEER, "held")) if label == "push-sse" else "no WebSocket",
                ratio(held, get(conn, PEER, "held")) if label == "push-sse" else "",
                None if not held else held["min"] >= goal,
            )
        )
        kb = get(conn, label, "rss_kb_per_conn")
        rows.append(
            _row(
                f"≤ 40 KB app RSS per idle {label[5:].upper()} connection",
                span(kb, 1, " KB"),
                span(get(conn, PEER, "rss_kb_per_conn"), 1, " KB")
                if label == "push-sse"
                else "no WebSocket",
                ratio(kb, get(conn, PEER, "rss_kb_per_conn")) if label == "push-sse" else "",
                None if not kb else kb["median"] <= 40,
            )
        )
    push5, peer5 = tp_of(results, 5, PUSH), tp_of(results, 5, PEER)
    rate, peer_rate = push5.get("deliveries_per_s"), peer5.get("deliveries_per_s")
    rows.append(
        _row(
            f"deliveries/s ≥ 3× Flask-SSE ({plan['tp_users_5tabs']} users × 5 tabs, SSE)",
            span(rate, 0, "/s"),
            span(peer_rate, 0, "/s"),
            ratio(rate, peer_rate),
            None if not (rate and peer_rate) else rate["median"] >= 3 * peer_rate["median"],
        )
    )
    us = push5.get("app_cpu_us_per_delivery")
    rows.append(
        _row(
            "about 8 µs of app CPU per delivery (users × 5)",
            span(us, 1, " µs"),
            span(peer5.get("app_cpu_us_per_delivery"), 1, " µs"),
            ratio(us, peer5.get("app_cpu_us_per_delivery")),
            None if not us else us["median"] <= 8,
        )
    )
    large = plan["lat_large"]
    for key, limit in (("p50", 1.0), ("p99", 5.0)):
        value = lat_of(results, 5, PUSH, large).get(key)
        peer = lat_of(results, 5, PEER, large).get(key)
        rows.append(
            _row(
                f"latency {key} ≤ {limit:g} ms at {large:,} connections (users × 5), "
                f"{plan['lat_rate']:g} msg/s",
                span(value, 2, " ms"),
                span(peer, 2, " ms"),
                ratio(value, peer),
                None if not value else value["median"] <= limit,
            )
        )
    clients = get(conn, PUSH, "redis_clients")
    online = get(conn, PUSH, "online_users")
    allowed = online["median"] + 10 * 2 if online else None
    rows.append(
        _row(
            f"Redis connections ≤ online users + 10 per worker ({online['median']:,.0f} "
            f"users online: ≤ {allowed:,.0f})"
            if online
            else "Redis connections ≤ online users + 10 per worker",
            span(clients),
            span(get(conn, PEER, "redis_clients")),
            ratio(clients, get(conn, PEER, "redis_clients")),
            None if not clients else clients["median"] <= allowed,
        )
    )
    return rows


def target_table(rows: list[dict]) -> list[str]:
    lines = ["| target | push | Flask-SSE (same run) | ratio | |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['target']} | {row['push']} | {row['peer']} | {row['ratio']} | "
            f"{verdict(row['met'])} |"
        )
    return lines


THROUGHPUT_ROWS = (
    ("deliveries_per_s", "deliveries/s at the clients", 0, ""),
    ("app_cpu_us_per_delivery", "app CPU per delivery", 1, " µs"),
    ("redis_cpu_us_per_delivery", "Redis CPU per delivery", 2, " µs"),
    ("app_cpu_pct_of_core", "app CPU (2 workers)", 0, " % of a core"),
    ("redis_cpu_pct_of_core", "Redis CPU", 0, " % of a core"),
    ("producer_cpu_pct_of_core", "producer CPU", 0, " % of a core"),
    ("generator_cpu_pct_of_core", "load generators' CPU", 0, " % of a core"),
    ("generator_share_of_cpu_used_pct", "generators' share of all CPU used", 0, " %"),
)

RAMP_ROWS = (
    ("live", "streams live at the end of the ramp", 0, ""),
    ("open", "streams open when measured", 0, ""),
    ("held", "streams held (got the probe message)", 0, ""),
    ("failed", "connects/handshakes failed", 0, ""),
    ("accept_per_s", "accept rate (streams live/s during ramp)", 0, "/s"),
    ("ramp_s", "ramp time", 1, " s"),
    ("app_cpu_us_per_accept", "app CPU per accepted stream", 0, " µs"),
    ("rss_mb", "worker RSS, total", 1, " MB"),
    ("rss_kb_per_conn", "worker RSS per stream (Δ over idle workers)", 1, " KB"),
    ("redis_bytes_per_conn", "Redis used_memory per stream", 0, " B"),
    ("redis_clients", "Redis connected_clients (the apps')", 0, ""),
    ("redis_clients_per_conn", "Redis clients per stream", 3, ""),
    ("online_users", "online users (with a stream open)", 0, ""),
    ("redis_clients_per_user", "Redis clients per online user", 2, ""),
    ("generator_cpu_pct_of_core", "load generators' CPU during ramp", 0, " % of a core"),
)


def shape_sections(results: dict) -> list[str]:
    plan = results["plan"]
    lines: list[str] = []
    for tabs in (1, 5):
        systems = {
            label: data for label, data in shape(results, tabs).items() if "error" not in data
        }
        if not systems:
            continue
        users = plan["tp_users_1tab"] if tabs == 1 else plan["tp_users_5tabs"]
        labels = list(systems)
        lines += [
            f"### Users × {tabs}: throughput at {users:,} users ({users * tabs:,} streams), "
            f"producers as fast as delivered ({plan['tp_inflight']:,} messages in flight), "
            f"{plan['tp_window_s']:g} s windows",
            "",
            "| | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for key, name, digits, unit in THROUGHPUT_ROWS:
            cells = [span(get(systems[label], "throughput", key), digits, unit) for label in labels]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        costly = get(systems.get(PUSH, {}), "throughput", "reps")
        if costly:
            top = costly[0].get("redis_commands_per_delivery") or {}
            if top:
                lines.append(
                    "Redis's costliest commands for push-sse (first rep; calls and µs of "
                    "Redis time per delivery, nested script commands counted in both): "
                    + ", ".join(f"`{name}` {calls:g} / {us:g}" for name, (calls, us) in top.items())
                    + "."
                )
                lines.append("")
        for streams in (plan["lat_small"], plan["lat_large"]):
            lat = {label: lat_of(results, tabs, label, streams) for label in labels}
            lat = {label: data for label, data in lat.items() if data}
            if not lat:
                continue
            lines += [
                f"#### Users × {tabs}: latency at {streams:,} streams ({streams // tabs:,} "
                f"users), {plan['lat_rate']:g} msg/s to random users, publish → client",
                "",
                "| | " + " | ".join(lat) + " | ratio push-sse ÷ flask-sse |",
                "|---|" + "---|" * (len(lat) + 1),
            ]
            for stat in ("p50", "p90", "p99", "max"):
                cells = [span(get(lat, label, stat), 2, " ms") for label in lat]
                lines.append(
                    f"| {stat} | "
                    + " | ".join(cells)
                    + f" | {ratio(get(lat, PUSH, stat), get(lat, PEER, stat))} |"
                )
            cells = [span(get(lat, label, "deliveries_per_rep")) for label in lat]
            lines.append("| deliveries measured per rep | " + " | ".join(cells) + " | |")
            cells = [span(get(lat, label, "app_cpu_pct_of_core"), 0, " %") for label in lat]
            lines.append("| app CPU meanwhile (% of a core) | " + " | ".join(cells) + " | |")
            lines.append("")
        lines += [
            f"#### Users × {tabs}: Redis connections and worker RSS as the streams opened",
            "",
            "| streams | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        stages = sorted({int(k) for data in systems.values() for k in data["redis_clients"]})
        for stage in stages:
            cells = []
            for label in labels:
                clients = at(systems[label]["redis_clients"], stage)
                rss = at(systems[label]["rss_mb"], stage)
                cells.append(
                    f"{clients:,} clients, {rss:,.0f} MB" if clients is not None else "n/a"
                )
            lines.append(f"| {stage:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def ramp_section(title: str, ramps: dict, intro: str) -> list[str]:
    labels = list(ramps)
    lines = [
        title,
        "",
        intro,
        "",
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for key, name, digits, unit in RAMP_ROWS:
        cells = [span(get(ramps, label, key), digits, unit) for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def markdown(results: dict, plots: dict[str, str]) -> str:
    plan = results["plan"]
    machine = results["machine"]
    sc = results["scenarios"]
    lines = [
        f"# push vs Flask-SSE: bench results ({results['date']}, {plan['name']} run)",
        "",
        f"Generated by `bench/run.py{' --quick' if plan['name'] != 'full' else ''}` "
        f"(`make bench{'-quick' if plan['name'] != 'full' else ''}`) in "
        f"{results['seconds'].get('total', 0):.0f} s on {machine['cpus']} CPUs, Python "
        f"{machine['python']}, Redis {machine.get('redis', '?')}; both systems under "
        f"gunicorn with {machine['workers']} gevent workers (push: the repo's gunicorn.conf.py; "
        "Flask-SSE: bench/peer_gunicorn.conf.py, the same server settings; "
        f"worker_connections {machine['worker_connections']:,}, "
        f"{machine.get('capacity_worker_connections', 0):,} for the capacity ramp), the same "
        f"Redis, `ulimit -n` {machine['nofile_limit']:,} (the hard limit here). Every figure: "
        f"**median** (min–max) of {plan['reps']} repetitions, except the 20,000-stream ramps "
        f"({plan['conn_reps']} each). Ratio = push ÷ Flask-SSE. One delivery = one message "
        "reaching one tab. push-sse and push-ws: the default `PUSH_MAILBOX_WATCH=auto`, which "
        "picks the mailbox watcher on this Redis; push-sse-block: `PUSH_MAILBOX_WATCH=block` "
        f"(a blocked Redis connection per online user). Raw data: `{plots.get('json', '')}`.",
        "",
        "## Targets (issue 17: one connection per user)",
        "",
        *target_table(targets(results)),
        "",
        'Why the targets not met are not, and what is left: `bench/README.md`, "Reading the '
        'targets that are not met".',
        "",
        "## Targets of issue 4, still tracked",
        "",
        *target_table(earlier_targets(results)),
    ]
    lines += machine_speed(results)
    lines += ["", "## All figures", ""]
    lines += shape_sections(results)
    cap = sc.get("capacity")
    if cap:
        lines += ramp_section(
            f"### Capacity: idle streams ramped to {plan['cap_users']:,} users × 1, "
            "fresh server per rep",
            cap,
            f"push with the mailbox watcher only: Flask-SSE needs two descriptors a stream "
            f"(20,000 a process here), blocking movers a Redis connection a user. The ramp "
            f"stops after {plan['cap_max_s']:g} s; the generators connect from 127.0.0.2-4 "
            "(one source address reaches one port through at most 28,232 ephemeral ports).",
        )
    conn = sc.get("connections")
    if conn:
        lines += ramp_section(
            f"### Connections: idle streams ramped to {plan['conn_total']:,} "
            f"({plan['conn_total'] // plan['conn_tabs']:,} users × {plan['conn_tabs']} tabs), "
            "fresh server per rep",
            conn,
            f"The ramp stops after {plan['conn_max_s']:g} s. *Open* = streams whose response "
            "head arrived (Flask-SSE: its Redis subscriptions) when RSS and Redis were read; "
            "per-stream figures divide by it. *Held* = streams that then received a probe "
            f"message (one per user) within {PROBE_S:g} s.",
        )
    backlog = sc.get("backlog")
    if backlog:
        lines += [
            f"### Backlog: {backlog['messages']:,} messages waiting for {backlog['users']:,} "
            "offline users, then one SSE stream each",
            "",
            "| | push SSE | Flask-SSE |",
            "|---|---|---|",
            f"| time until all arrived | {span(backlog['seconds'], 2, ' s')} "
            "| n/a: pub/sub keeps no backlog |",
            f"| deliveries/s | {span(backlog['deliveries_per_s'])} | n/a |",
            f"| app CPU per delivery | {span(backlog['app_cpu_us_per_delivery'], 1, ' µs')} "
            "| n/a |",
            "",
        ]
    raw = sc.get("raw")
    if raw:
        lines += [
            "### Raw limit: a bare redis-py client on one core (LPUSH + BLMOVE)",
            "",
            "| loop | messages/s | client CPU per message | Redis CPU per message |",
            "|---|---|---|---|",
        ]
        for label, data in raw.items():
            reps = data["reps"]
            client = sorted(r["client_cpu_us_per_msg"] for r in reps)[len(reps) // 2]
            server = sorted(r["redis_cpu_us_per_msg"] for r in reps)[len(reps) // 2]
            lines.append(
                f"| {label} | {span(data['msgs_per_s'])} | {client:.1f} µs | {server:.1f} µs |"
            )
        lines.append("")

    lines += ["## Plots", ""]
    for name in ("latency_cdf", "throughput", "rss_vs_connections"):
        if name in plots:
            lines.append(f"![{name}]({plots[name]})")
            lines.append("")
    lines += [
        "## How it is measured",
        "",
        "- Shapes: one server per system and shape; its streams open in stages (the light-load "
        "latency at the smaller count, the throughput at its users, the latency at the larger "
        "count), each stage measured before the next opens, every stream probed with one "
        "message first.",
        "- Load: separate generator processes (asyncio on uvloop, raw sockets, hand-written "
        "HTTP/1.1 and WebSocket framing), each connecting from its own loopback address; a "
        "delivery is counted per SSE `data:` event or WS text frame. Their CPU is shown above.",
        "- Producer: a separate process with redis-py pipelines: `LPUSH user_<id>_messages` "
        'for push, `PUBLISH user_<id> {"data": ...}` (what `sse.publish` sends) for Flask-SSE. '
        "Payloads are 64 bytes with `ts=<time.time_ns()>`; latency = receive − stamp.",
        "- App RSS = sum of the 2 gunicorn workers' RSS (psutil); per stream = (RSS with the "
        "streams − RSS of the warmed-up idle workers) ÷ streams open. Redis memory = "
        "`INFO memory used_memory`, clients = `INFO clients connected_clients` less the "
        "bench's own.",
        "- CPU per delivery = process CPU time (user+system) in the window ÷ deliveries in "
        "the window. All processes share the machine's 2 cores, so throughput is bound by the "
        "CPU all of them use per delivery.",
        "- Throughput: the producer keeps a fixed number of messages in flight (sent, not yet "
        "received by all tabs), so it runs as fast as the system delivers.",
        "- Flask-SSE sends its response head only with the first message; its streams count as "
        "live by their Redis connection (one pub/sub connection each), and as held once they "
        "received the probe message, like push's.",
        "",
    ]
    return "\n".join(lines)


def plot_latency(results: dict, path: Path) -> bool:
    plan = results["plan"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drew = False
    for tabs, style in ((1, "-"), (5, "--")):
        for label in shape(results, tabs):
            lat = lat_of(results, tabs, label, plan["lat_large"])
            values = lat.get("cdf_ms") or []
            if not values or label == "push-ws":
                continue
            n = len(values)
            ax.plot(
                values,
                [(i + 1) / n for i in range(n)],
                style,
                color=COLORS.get(label),
                label=f"{label}, users × {tabs}, {plan['lat_large']:,} streams",
            )
            drew = True
    if not drew:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel("publish → client latency (ms, log)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title(f"Latency CDF at light load ({plan['lat_rate']:g} msg/s), median repetition")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_throughput(results: dict, path: Path) -> bool:
    plan = results["plan"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    drew = False
    for ax, tabs in zip(axes, (1, 5), strict=True):
        systems = {
            label: data["throughput"]
            for label, data in shape(results, tabs).items()
            if data.get("throughput")
        }
        if not systems:
            continue
        labels = list(systems)
        rates = [systems[label]["deliveries_per_s"] for label in labels]
        med = [rate["median"] for rate in rates]
        low = [rate["median"] - rate["min"] for rate in rates]
        high = [rate["max"] - rate["median"] for rate in rates]
        ax.bar(labels, med, yerr=[low, high], capsize=6, color=[COLORS.get(lb) for lb in labels])
        for i, (value, up) in enumerate(zip(med, high, strict=True)):
            ax.text(i, value + up, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
        users = plan["tp_users_1tab"] if tabs == 1 else plan["tp_users_5tabs"]
        ax.set_title(f"{users:,} users × {tabs}")
        ax.tick_params(axis="x", labelsize=7)
        drew = True
    if not drew:
        plt.close(fig)
        return False
    axes[0].set_ylabel("deliveries/s at the clients (median, min–max)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_rss(results: dict, path: Path) -> bool:
    ramps = {}
    for scenario, suffix in (("capacity", " × 1"), ("connections", " × 5")):
        for label, data in (get(results, "scenarios", scenario) or {}).items():
            ramps[f"{label}{suffix}"] = (label, data)
    if not ramps:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (label, data) in ramps.items():
        curve = data.get("curve") or []
        if not curve:
            continue
        base = curve[0][2]
        ax.plot(
            [c[1] for c in curve],
            [(c[2]) / 2**20 for c in curve],
            marker=".",
            color=COLORS.get(label),
            linestyle="-" if name.endswith("1") else "--",
            label=f"{name} (idle workers {base / 2**20:.0f} MB)",
        )
    ax.set_xlabel("live connections")
    ax.set_ylabel("worker RSS, 2 workers (MB)")
    ax.set_title("App RSS during the ramps (median repetition)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_all(results: dict, out_dir: Path, md_path: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{results['date']}.json"
    text = json.dumps(results, indent=1)
    json_path.write_text(text + "\n")
    results = json.loads(text)  # render what the file holds (its keys are text)

    def rel(path: Path) -> str:
        base = md_path.parent
        return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)

    plots = {"json": rel(json_path)}
    for name, draw in (
        ("latency_cdf", plot_latency),
        ("throughput", plot_throughput),
        ("rss_vs_connections", plot_rss),
    ):
        path = out_dir / f"{name}.png"
        if draw(results, path):
            plots[name] = rel(path)
    md_path.write_text(markdown(results, plots))
    print(f"wrote {json_path}, {md_path} and {len(plots) - 1} plots in {out_dir}")


if __name__ == "__main__":
    source = Path(sys.argv[1]).resolve()
    data = json.loads(source.read_text())
    bench = Path(__file__).resolve().parent
    full = data["plan"]["name"] == "full"
    write_all(data, source.parent, bench / "RESULTS.md" if full else source.parent / "RESULTS.md")

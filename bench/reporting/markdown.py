# ruff: noqa: RUF001
"""The whole of RESULTS.md: the targets, the machine's speed, each shape's latency and
throughput, the ramps, the backlog and the raw limit."""

from __future__ import annotations

from reporting.figures import (
    PEER,
    PROBE_S,
    PUSH,
    at,
    get,
    lat_of,
    machine_speed,
    ratio,
    shape,
    span,
)
from reporting.targets import (
    earlier_targets,
    target_table,
    targets,
)

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

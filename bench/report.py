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
COLORS = {"push-sse": "#1f77b4", "push-ws": "#2ca02c", "flask-sse": "#d62728"}


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


#: What the issue measured Flask-SSE at, on the machine it was written on: 200 users x 5
#: tabs under gunicorn with 2 gevent workers.
REFERENCE_PEER_DELIVERIES_PER_S = 45_000
REFERENCE_PEER_US_PER_DELIVERY = 25.0


def machine_speed(results: dict) -> list[str]:
    """How fast this machine ran the peer against the issue's reference measurement, so
    that absolute targets (8 us, 1 ms, 20,000 in the ramp) can be read against it."""
    tp = get(results, "scenarios", "throughput") or {}
    peer_rate = get(tp, PEER, "deliveries_per_s", "median")
    peer_us = get(tp, PEER, "app_cpu_us_per_delivery", "median")
    push_us = get(tp, PUSH, "app_cpu_us_per_delivery", "median")
    if not (peer_rate and peer_us and push_us):
        return []
    slower = peer_us / REFERENCE_PEER_US_PER_DELIVERY
    return [
        "",
        f"**This machine's speed.** Here Flask-SSE delivered {peer_rate:,.0f}/s at "
        f"{peer_us:.1f} µs of app CPU each; the issue measured it at about "
        f"{REFERENCE_PEER_DELIVERIES_PER_S:,}/s and {REFERENCE_PEER_US_PER_DELIVERY:g} µs on "
        f"its reference machine, so this one did the same work {slower:.1f}× slower. Read "
        f"the absolute targets against that: push's {push_us:.1f} µs per delivery would be "
        f"about {push_us / slower:.1f} µs at the reference's speed (the target's 8 µs is "
        "about a third of Flask-SSE's 25 µs; push used "
        f"{push_us / peer_us:.2f}× of Flask-SSE's here), and the connection ramp and the "
        "latencies are bound by the same CPU.",
    ]


def targets(results: dict) -> list[dict]:
    """Each target of the issue: push's figure, the peer's, the ratio, met or not."""
    plan = results["plan"]
    quick = plan["name"] != "full"
    scale = " (quick scale)" if quick else ""
    conn = get(results, "scenarios", "connections") or {}
    tp = get(results, "scenarios", "throughput") or {}
    lat = get(results, "scenarios", "latency_10k") or {}
    rows = []
    goal = plan["conn_total"]
    for label in ("push-sse", "push-ws"):
        held = get(conn, label, "held")
        opened = get(conn, label, "open")
        rows.append(
            {
                "target": f"≥ {goal:,} concurrent {label[5:].upper()} connections on 2 workers"
                + scale
                + f" (held: got the probe; ramp ≤ {plan['conn_max_s']:g} s)",
                "push": span(held) + (f" [open {opened['median']:,.0f}]" if opened else ""),
                "peer": span(get(conn, PEER, "held")) if label == "push-sse" else "no WebSocket",
                "ratio": ratio(held, get(conn, PEER, "held")) if label == "push-sse" else "",
                "met": None if not held else held["min"] >= goal,
            }
        )
    for label in ("push-sse", "push-ws"):
        kb = get(conn, label, "rss_kb_per_conn")
        rows.append(
            {
                "target": f"≤ 40 KB app RSS per idle {label[5:].upper()} connection",
                "push": span(kb, 1, " KB"),
                "peer": span(get(conn, PEER, "rss_kb_per_conn"), 1, " KB")
                if label == "push-sse"
                else "no WebSocket",
                "ratio": ratio(kb, get(conn, PEER, "rss_kb_per_conn"))
                if label == "push-sse"
                else "",
                "met": None if not kb else kb["median"] <= 40,
            }
        )
    push_tp, peer_tp = get(tp, PUSH, "deliveries_per_s"), get(tp, PEER, "deliveries_per_s")
    ok = None
    if push_tp and peer_tp:
        ok = push_tp["median"] >= 3 * peer_tp["median"]
    rows.append(
        {
            "target": f"deliveries/s ≥ 3× Flask-SSE ({plan['tp_users']} users × "
            f"{plan['tp_tabs']} tabs, SSE)",
            "push": span(push_tp, 0, "/s"),
            "peer": span(peer_tp, 0, "/s"),
            "ratio": ratio(push_tp, peer_tp),
            "met": ok,
        }
    )
    cpu = get(tp, PUSH, "app_cpu_us_per_delivery")
    rows.append(
        {
            "target": "about 8 µs of app CPU per delivery",
            "push": span(cpu, 1, " µs"),
            "peer": span(get(tp, PEER, "app_cpu_us_per_delivery"), 1, " µs"),
            "ratio": ratio(cpu, get(tp, PEER, "app_cpu_us_per_delivery")),
            "met": None if not cpu else cpu["median"] <= 8,
        }
    )
    streams = get(lat, PUSH, "streams")
    peer_streams = get(lat, PEER, "streams")
    at = f"{plan['lat_total']:,}"
    if not lat:  # quick: no separate ramp, the 1,000 streams of the throughput scenario
        lat = get(results, "scenarios", "latency_1k") or {}
        at = f"{plan['tp_users'] * plan['tp_tabs']:,}"
        streams = peer_streams = None
    for key, limit in (("p50", 1.0), ("p99", 5.0)):
        value = get(lat, PUSH, key)
        rows.append(
            {
                "target": f"latency {key} ≤ {limit:g} ms at {at} connections, "
                f"{plan['lat_rate']:g} msg/s" + scale,
                "push": span(value, 2, " ms") + (f" [{streams:,} streams]" if streams else ""),
                "peer": span(get(lat, PEER, key), 2, " ms")
                + (f" [{peer_streams:,} streams]" if peer_streams else ""),
                "ratio": ratio(value, get(lat, PEER, key)),
                "met": None if not value else value["median"] <= limit,
            }
        )
    clients = get(conn, PUSH, "redis_clients")
    online = get(conn, PUSH, "online_users")
    allowed = online["median"] + 10 * 2 if online else None
    rows.append(
        {
            "target": "Redis connections ≤ online users + 10 per worker "
            f"({online['median']:,.0f} users online, {plan['conn_tabs']} tabs each: "
            f"≤ {allowed:,.0f})"
            if online
            else "Redis connections ≤ online users + 10 per worker",
            "push": span(clients),
            "peer": span(get(conn, PEER, "redis_clients")),
            "ratio": ratio(clients, get(conn, PEER, "redis_clients")),
            "met": None if not clients else clients["median"] <= allowed,
        }
    )
    return rows


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
        f"worker_connections {machine['worker_connections']:,}), the same Redis, "
        f"`ulimit -n` {machine['nofile_limit']:,} (the hard limit here). Every figure: "
        f"**median** (min–max) of {plan['reps']} repetitions. Ratio = push ÷ Flask-SSE. "
        "One delivery = one message reaching one tab. Raw data: "
        f"`{plots.get('json', '')}`.",
        "",
        "## Targets (issue 4)",
        "",
        "| target | push | Flask-SSE (same run) | ratio | |",
        "|---|---|---|---|---|",
    ]
    for row in targets(results):
        lines.append(
            f"| {row['target']} | {row['push']} | {row['peer']} | {row['ratio']} | "
            f"{verdict(row['met'])} |"
        )
    lines += machine_speed(results)
    lines += ["", "## All figures", ""]

    conn = sc.get("connections")
    if conn:
        lines += [
            f"### Connections: idle streams ramped to {plan['conn_total']:,} "
            f"({conn[PUSH]['users']:,} users × {plan['conn_tabs']} tabs), fresh server per rep",
            "",
            f"The ramp stops after {plan['conn_max_s']:g} s (the run's time budget: 9 ramps "
            f"of 3 systems × {plan['reps']} reps), so reaching {plan['conn_total']:,} takes "
            f"≥ {plan['conn_total'] / plan['conn_max_s']:,.0f} accepts/s. *Open* = streams "
            "whose response head arrived (Flask-SSE: its Redis subscriptions) when RSS and "
            "Redis were read; per-stream figures divide by it. *Held* = streams that then "
            f"received a probe message (one per user) within {PROBE_S:g} s.",
            "",
            "| | push SSE | push WS | Flask-SSE |",
            "|---|---|---|---|",
        ]
        for key, name, digits, unit in (
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
        ):
            cells = [
                span(get(conn, label, key), digits, unit) for label in ("push-sse", "push-ws", PEER)
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")

    tp = sc.get("throughput")
    if tp:
        lines += [
            f"### Throughput: {plan['tp_users']} users × {plan['tp_tabs']} tabs, producers as "
            f"fast as delivered ({plan['tp_inflight']:,} messages in flight), "
            f"{plan['tp_window_s']:g} s windows",
            "",
            "| | " + " | ".join(tp) + " |",
            "|---|" + "---|" * len(tp),
        ]
        for key, name, digits, unit in (
            ("deliveries_per_s", "deliveries/s at the clients", 0, ""),
            ("app_cpu_us_per_delivery", "app CPU per delivery", 1, " µs"),
            ("redis_cpu_us_per_delivery", "Redis CPU per delivery", 2, " µs"),
            ("app_cpu_pct_of_core", "app CPU (2 workers)", 0, " % of a core"),
            ("redis_cpu_pct_of_core", "Redis CPU", 0, " % of a core"),
            ("producer_cpu_pct_of_core", "producer CPU", 0, " % of a core"),
            ("generator_cpu_pct_of_core", "load generators' CPU", 0, " % of a core"),
            ("generator_share_of_cpu_used_pct", "generators' share of all CPU used", 0, " %"),
        ):
            cells = [span(get(tp, label, key), digits, unit) for label in tp]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")

    for key, title in (("latency_1k", "light load on the throughput streams"), ("latency_10k", "")):
        lat = sc.get(key)
        if not lat:
            continue
        streams = ", ".join(
            f"{label} {lat[label].get('streams', '?')}" for label in lat if "streams" in lat[label]
        )
        target = plan["tp_users"] * plan["tp_tabs"] if key == "latency_1k" else plan["lat_total"]
        lines += [
            f"### Latency at {target:,} streams: {plan['lat_rate']:g} msg/s to random users, "
            "publish → client"
            + (f" ({title}; streams: {streams})" if title else f" (streams: {streams})"),
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
        cells = [span(get(lat, label, "generator_cpu_pct_of_core"), 0, " %") for label in lat]
        lines.append("| load generators' CPU (% of a core) | " + " | ".join(cells) + " | |")
        lines.append("")

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
        if tp and get(tp, PUSH, "deliveries_per_s"):
            one = raw.get("redis-py loop, 1 per round trip", {}).get("msgs_per_s")
            if one:
                lines.append("")
                lines.append(
                    f"push SSE delivered {ratio(get(tp, PUSH, 'deliveries_per_s'), one)} the "
                    "one-message-per-round-trip loop's rate (5 tabs per message, batched drains)."
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
        "- Load: separate generator processes (asyncio on uvloop, raw sockets, hand-written "
        "HTTP/1.1 and WebSocket framing); a delivery is counted per SSE `data:` event or WS "
        "text frame. Their CPU is shown above.",
        "- Producer: a separate process with redis-py pipelines: `LPUSH user_<id>_messages` "
        'for push, `PUBLISH user_<id> {"data": ...}` (what `sse.publish` sends) for Flask-SSE. '
        "Payloads are 64 bytes with `ts=<time.time_ns()>`; latency = receive − stamp.",
        "- App RSS = sum of the 2 gunicorn workers' RSS (psutil); per stream = (RSS with the "
        "streams − RSS of the warmed-up idle workers) ÷ streams held. Redis memory = "
        "`INFO memory used_memory`, clients = `INFO clients connected_clients` less the "
        "bench's own.",
        "- CPU per delivery = process CPU time (user+system) in the window ÷ deliveries in "
        "the window.",
        "- Throughput: the producer keeps a fixed number of messages in flight (sent, not yet "
        "received by all tabs), so it runs as fast as the system delivers.",
        "- Flask-SSE sends its response head only with the first message; its streams count as "
        "live by their Redis connection (one pub/sub connection each), and as held once they "
        "received the probe message, like push's.",
        "- `ulimit -n` cannot be raised past the hard limit here; a Flask-SSE worker needs two "
        "descriptors per stream (client socket + its own Redis connection), and Redis one per "
        "Flask-SSE stream.",
        "",
    ]
    return "\n".join(lines)


def plot_latency(results: dict, path: Path) -> bool:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drew = False
    for key, style in (("latency_10k", "-"), ("latency_1k", "--")):
        lat = get(results, "scenarios", key) or {}
        for label, data in lat.items():
            values = data.get("cdf_ms") or []
            if not values:
                continue
            n = len(values)
            ax.plot(
                values,
                [(i + 1) / n for i in range(n)],
                style,
                color=COLORS.get(label),
                label=f"{label}, {data.get('streams', '?'):,} streams",
            )
            drew = True
    if not drew:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel("publish → client latency (ms, log)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("Latency CDF at light load (500 msg/s), median repetition")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_throughput(results: dict, path: Path) -> bool:
    tp = get(results, "scenarios", "throughput") or {}
    if not tp:
        return False
    labels = list(tp)
    med = [tp[label]["deliveries_per_s"]["median"] for label in labels]
    low = [m - tp[label]["deliveries_per_s"]["min"] for m, label in zip(med, labels, strict=True)]
    high = [tp[label]["deliveries_per_s"]["max"] - m for m, label in zip(med, labels, strict=True)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.bar(labels, med, yerr=[low, high], capsize=6, color=[COLORS.get(label) for label in labels])
    for i, (value, up) in enumerate(zip(med, high, strict=True)):
        ax.text(i + 0.08, value + up, f"{value:,.0f}", ha="left", va="bottom", fontsize=9)
    raw = get(results, "scenarios", "raw") or {}
    for (label, data), style in zip(raw.items(), (":", "-."), strict=False):
        ax.axhline(
            data["msgs_per_s"]["median"],
            linestyle=style,
            color="gray",
            label=f"raw: {label} (msg/s)",
        )
    ax.set_ylabel("deliveries/s at the clients")
    plan = results["plan"]
    ax.set_title(f"Throughput, {plan['tp_users']} users × {plan['tp_tabs']} tabs (median, min–max)")
    if raw:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_rss(results: dict, path: Path) -> bool:
    conn = get(results, "scenarios", "connections") or {}
    if not conn:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, data in conn.items():
        curve = data.get("curve") or []
        if not curve:
            continue
        base = curve[0][2]
        ax.plot(
            [c[1] for c in curve],
            [(c[2]) / 2**20 for c in curve],
            marker=".",
            color=COLORS.get(label),
            label=f"{label} (idle workers {base / 2**20:.0f} MB)",
        )
    ax.set_xlabel("live connections")
    ax.set_ylabel("worker RSS, 2 workers (MB)")
    ax.set_title("App RSS during the ramp (median repetition)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_all(results: dict, out_dir: Path, md_path: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{results['date']}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")

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

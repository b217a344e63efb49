# ruff: noqa: RUF001
"""The targets of issue 17 (and those earlier issues set): push's figure, the peer's, the
ratio, and whether the target is met; then as a Markdown table."""

from __future__ import annotations

from reporting.figures import (
    CAPACITY_KB_PER_STREAM,
    LAST_RATIO_5TABS,
    LAST_US_5TABS,
    P50_SLACK_MS,
    PEER,
    PUSH,
    WATCHER_CONNECTIONS_PER_WORKER,
    at,
    get,
    lat_of,
    ratio,
    shape,
    span,
    tp_of,
    verdict,
)


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

# ruff: noqa: RUF001
"""The PNG plots beside RESULTS.md (matplotlib, Agg): the latency CDF, throughput, and
worker RSS against open connections."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reporting.figures import (
    get,
    lat_of,
    shape,
)

COLORS = {
    "push-sse": "#1f77b4",
    "push-ws": "#2ca02c",
    "push-sse-block": "#9467bd",
    "flask-sse": "#d62728",
}


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

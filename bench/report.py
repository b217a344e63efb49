"""Results -> <date>.json, the Markdown table and the PNG plots (matplotlib, Agg).

.venv/bin/python bench/report.py bench/results/2025-11-26.json   # redraw from a JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reporting.markdown import markdown
from reporting.plots import plot_latency, plot_rss, plot_throughput

__all__ = ["markdown", "write_all"]


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

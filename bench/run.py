"""`make bench` / `make bench-quick`: push beside Flask-SSE and the raw Redis limit.

    .venv/bin/python bench/run.py            # full: about 13 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # about 3 minutes, for development
    .venv/bin/python bench/run.py --only shapes,capacity --profile /tmp/pyspy

Starts its own Redis (a free port, maxclients raised) and, one at a time, gunicorn with
2 gevent workers for push (`wsgi:app`, PUSH_DEMO=1; with the mailbox watcher, and with
blocking movers: PUSH_MAILBOX_WATCH=block) and for the peer (`peer_app:app`: Flask-SSE
from PyPI; bench/peer_gunicorn.conf.py repeats the server settings of the repo's
gunicorn.conf.py without push's hooks). Load comes from separate generator processes
(loadgen.py, each from its own loopback address) and a producer process (producer.py).
Writes results/<date>.json (full) or results/quick/<date>.json, the Markdown table
(RESULTS.md, or results/quick/RESULTS.md) and the PNG plots beside it (report.py).

Scenarios: `shapes` (each system with one stream per user, what push.js makes, and with
five: light-load latency at 1,000 and 10,000 streams, and throughput at 8,000 users x 1
and 200 users x 5), `capacity` (36,000 users with one stream each, push only: Flask-SSE
needs two descriptors a stream, blocking movers a Redis connection a user),
`connections` (idle streams ramped to 20,000, 5 tabs a user), `backlog` and `raw`.

Everything listens and connects on 127.0.0.1; every loop is bounded in count and time;
every process started here is stopped in a finally.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from plans import (  # noqa: E402
    CAPACITY_WORKER_CONNECTIONS,
    FULL,
    QUICK,
    SCENARIOS,
    SYSTEMS,
    WORKER_CONNECTIONS,
    WORKERS,
)
from rig import Bench, log  # noqa: E402
from scenarios import RUNS  # noqa: E402

from tests.harness.limits import raise_nofile  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, about 3 minutes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    parser.add_argument("--profile", type=Path, help="py-spy the first push worker into DIR")
    parser.add_argument(
        "--native", action="store_true", help="with --profile: C frames too (slows the worker)"
    )
    parser.add_argument(
        "--set", action="append", default=[], help="override a plan field: KEY=VALUE (development)"
    )
    parser.add_argument("--systems", help=f"comma list of {','.join(SYSTEMS)} (development)")
    parser.add_argument(
        "--no-write", action="store_true", help="write the JSON to the temp dir only"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(plan, key)
        plan = replace(
            plan, **{key: type(current)(value) if not isinstance(current, bool) else value == "1"}
        )
    if args.systems:
        chosen = args.systems.split(",")
        for label in list(SYSTEMS):
            if label not in chosen:
                del SYSTEMS[label]
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    results: dict = {
        "date": dt.date.today().isoformat(),
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "nofile_limit": raise_nofile(),
            "workers": WORKERS,
            "worker_connections": WORKER_CONNECTIONS,
            "capacity_worker_connections": CAPACITY_WORKER_CONNECTIONS,
        },
        "scenarios": {},
        "seconds": {},
    }
    log(f"{plan.name} run: {', '.join(wanted)}")
    with Bench(plan, args.profile, args.native) as bench:
        results["machine"]["redis"] = bench.info("server")["redis_version"]
        for name in SCENARIOS:
            if name not in wanted:
                continue
            t = time.monotonic()
            try:
                data = RUNS[name](bench)
            except Exception as error:  # one failed scenario must not lose the others
                log(f"scenario {name} failed: {error!r}")
                results.setdefault("errors", {})[name] = repr(error)
                for server in list(bench.servers):
                    bench.stop_server(server)
                continue
            results["scenarios"][name] = data
            results["seconds"][name] = round(time.monotonic() - t, 1)
    results["seconds"]["total"] = round(time.monotonic() - started, 1)
    log(f"done in {results['seconds']['total']:.0f} s")
    if args.no_write:
        path = Path(tempfile.gettempdir()) / f"push-bench-{plan.name}.json"
        path.write_text(json.dumps(results, indent=1))
        log(f"results in {path} (--no-write: nothing written under bench/)")
        return 0
    import report

    out_dir = BENCH / "results" if plan.name == "full" else BENCH / "results" / "quick"
    md_path = BENCH / "RESULTS.md" if plan.name == "full" else out_dir / "RESULTS.md"
    report.write_all(results, out_dir, md_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make chaos`: the full chaos run with both `appendfsync` settings, each with the
mailbox watcher and with blocking movers, then the browser.

    .venv/bin/python chaos/run.py                 # about 7 minutes on 2 cores
    .venv/bin/python chaos/run.py --quick         # the short version's sizes, ~3 minutes
    .venv/bin/python chaos/run.py --fsync always --watch notify --no-browser --keep

Writes chaos/RESULTS.md (or --out) and exits 1 if anything was lost, reordered, leaked or
wedged. Everything listens on 127.0.0.1; each run's Redis, gunicorn and clients are
stopped before the next starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

CHAOS = Path(__file__).resolve().parent
ROOT = CHAOS.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from chaos.browser import BrowserResult  # noqa: E402
from chaos.config import QUICK, ChaosConfig  # noqa: E402
from chaos.one_run import run_chaos  # noqa: E402
from chaos.report import render  # noqa: E402
from chaos.result import ChaosResult  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version's sizes")
    parser.add_argument("--fsync", choices=["always", "everysec", "both"], default="both")
    parser.add_argument("--watch", choices=["notify", "block", "both"], default="both")
    parser.add_argument("--messages", type=int, help="messages per run (default 50,000)")
    parser.add_argument("--rate", type=float, help="messages per second (default 600)")
    parser.add_argument("--seed", type=int, help="the fault schedule's seed (default 8)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument("--out", type=Path, default=CHAOS / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    return parser.parse_args(argv)


def configs(args: argparse.Namespace) -> list[ChaosConfig]:
    base = QUICK if args.quick else ChaosConfig()
    changes = {
        name: value
        for name, value in (("messages", args.messages), ("rate", args.rate), ("seed", args.seed))
        if value is not None
    }
    base = dataclasses.replace(base, **changes)
    modes = ["always", "everysec"] if args.fsync == "both" else [args.fsync]
    watches = ["notify", "block"] if args.watch == "both" else [args.watch]
    return [
        dataclasses.replace(base, fsync=mode, watch=watch) for mode in modes for watch in watches
    ]


def one_run(config: ChaosConfig, workdir: Path) -> ChaosResult:
    """A run whose failure to even finish is reported, not raised: the next one still runs."""
    try:
        return run_chaos(config, workdir, say=lambda line: print(line, flush=True))
    except Exception as error:
        traceback.print_exc()
        failed = ChaosResult(config)
        failed.errors.append(f"{type(error).__name__}: {error}")
        return failed


def browser_run(workdir: Path):
    from playwright.sync_api import sync_playwright

    from chaos.browser import run_browser
    from tests.harness.chromium import CHROMIUM, CHROMIUM_ARGS

    if CHROMIUM is None:
        print("no chromium on PATH: the browser part is skipped", flush=True)
        return None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            return run_browser(browser, workdir)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="push-chaos-"))
    print(f"work directory: {top}", flush=True)
    try:
        runs = [one_run(c, top / f"{c.fsync}-{c.watch}") for c in configs(args)]
        browser = None
        if not args.no_browser:
            print("[browser] Chromium through worker kills and a gunicorn restart", flush=True)
            try:
                browser = browser_run(top / "browser")
            except Exception as error:
                traceback.print_exc()
                browser = BrowserResult(messages=0, error=f"{type(error).__name__}: {error}")
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
    note = " (quick sizes)" if args.quick else ""
    report = render(runs, browser, time.monotonic() - started, note)
    args.out.write_text(report)
    print(report)
    print(f"written to {args.out}")
    ok = all(run.ok for run in runs) and (browser is None or browser.ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

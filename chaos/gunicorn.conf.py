"""gunicorn settings for the chaos runs: the project's own, plus a stats greenlet per worker.

The service is run exactly as `gunicorn -c gunicorn.conf.py wsgi:app` runs it; on top,
each worker writes what only it can see (live greenlets, its switchboard's users and
connections, its own /healthz answered in process, the connections of the users named
in `$CHAOS_WATCH_USERS`) to `$CHAOS_STATS_DIR/<pid>.json`
every `$CHAOS_STATS_INTERVAL_S` seconds. A file that stops being refreshed is a wedged
worker: the greenlet runs on the same loop as every stream.
"""

import os
from pathlib import Path

_PROJECT_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
exec(compile(_PROJECT_CONF.read_text(), str(_PROJECT_CONF), "exec"))

_project_post_worker_init = post_worker_init  # noqa: F821 (defined by the exec above)


def _live_greenlets() -> dict[str, int]:
    """Live greenlets by what they run (a gevent Greenlet's function, else the type)."""
    import gc
    from collections import Counter

    from greenlet import greenlet

    kinds = Counter()
    for o in gc.get_objects():
        if isinstance(o, greenlet) and not o.dead:
            run = getattr(o, "_run", None) or getattr(o, "run", None)
            name = getattr(run, "__qualname__", None) or type(o).__name__
            kinds[name] += 1
    return dict(kinds)


def _write_stats(worker, directory: Path, interval_s: float) -> None:
    import json
    import time

    import gevent

    app = worker.wsgi
    switchboard = app.extensions["push"].switchboard
    client = app.test_client()
    path = directory / f"{os.getpid()}.json"
    watched = [u for u in os.environ.get("CHAOS_WATCH_USERS", "").split(",") if u]
    while True:
        started = time.monotonic()
        healthz = client.get("/healthz").status_code
        kinds = _live_greenlets()
        pool = kinds.get("_WorkerGreenlet.run", 0) + kinds.get("greenlet", 0)
        stats = {
            "pid": os.getpid(),
            "time": time.time(),
            # The loop's greenlets; gevent's threadpool (one worker greenlet and one main
            # greenlet per thread, at most its maxsize) comes and goes, and is counted apart.
            "greenlets": sum(kinds.values()) - pool,
            "threadpool_greenlets": pool,
            "greenlet_kinds": kinds,
            "hub_started": switchboard._pid == os.getpid(),
            "users": len(switchboard.users),
            "connections": sum(len(c.tabs) for c in list(switchboard.users.values())),
            "healthz": healthz,
            # Connections a watched user holds here, closed-but-not-released ones included.
            "watched": {
                u: len(switchboard.users[u].tabs) if u in switchboard.users else 0 for u in watched
            },
            "cost_s": round(time.monotonic() - started, 4),
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(stats))
        temporary.replace(path)
        gevent.sleep(interval_s)


def post_worker_init(worker):
    _project_post_worker_init(worker)
    directory = os.environ.get("CHAOS_STATS_DIR")
    if directory:
        import gevent

        interval_s = float(os.environ.get("CHAOS_STATS_INTERVAL_S", "1"))
        gevent.spawn(_write_stats, worker, Path(directory), interval_s)

"""The tools the tests, the benchmarks (bench/) and the chaos runs (chaos/) share.

    waits.py          wait on a condition with a deadline: raise, or say whether it held
    stats.py          percentiles and medians of measured samples
    limits.py         the open-file limit raised to the hard limit
    processes.py      free ports, a process's children from /proc, stopping a process
    redis_servers.py  a private redis-server on a free port (the one import from push/)
    gunicorn.py       the app (or any WSGI app) under gunicorn on a free port
    chromium.py       where Debian's Chromium is, and the flags it runs headless with

Import it as `tests.harness` with the checkout on `sys.path`: pytest has it there
(pyproject's `pythonpath`), bench/run.py and chaos/run.py put it there. Nothing here
imports pytest, so a benchmark run needs none of the test tools.
"""

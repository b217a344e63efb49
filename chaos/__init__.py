"""The chaos suite: sequence-numbered messages through faults (`make chaos`, `make soak`).

See run.py for the full run, soak.py for the soak and tests/test_chaos.py for the short
version that runs inside `make test`. One run (one_run.py) is put together from:

    config.py    its sizes and the service's settings
    faults.py    what breaks the server side: worker kills, Redis restarts
    clients.py, proxy.py, loadproc.py, load.py
                 the clients, the faults on their side (churn, slow readers, silent cuts)
                 and the process they run in
    producer.py  the numbered messages
    analysis.py  what was delivered: lost, reordered, duplicated, latency
    baseline.py  what was left over: leaks, wedged workers
    result.py    the verdict; report.py renders RESULTS.md
    procs.py     the service under gunicorn, and what /proc says about its workers

Processes, waits, percentiles and the open-file limit are the shared harness's
(tests/harness/).
"""

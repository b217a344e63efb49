"""The chaos suite: sequence-numbered messages through faults (`make chaos`, `make soak`).

See run.py for the full run, soak.py for the soak and tests/test_chaos.py for the short
version that runs inside `make test`.
"""

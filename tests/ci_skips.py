"""A pytest plugin: under CI (the environment variable `CI` set), a skip fails the run.

Tests skip where the machine lacks what they drive (Chromium, nginx, Node). On a
developer's machine that is a convenience; in CI it would hide whole parts of the suite
behind a green run, so there every skip is reported as a failure naming its reason.
`make test` installs what the tests drive, so a skip in CI means the install went wrong.
An expected failure (`xfail`) is not a skip and is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

#: Values of `CI` that mean "not under CI" (as some runners set it to say so).
OFF = {"", "0", "false", "no"}


def under_ci() -> bool:
    """Whether the environment says this run is CI's."""
    return os.environ.get("CI", "").strip().lower() not in OFF


def _fail_if_skipped(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (report.skipped and under_ci()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    outcome = yield
    _fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator:
    outcome = yield
    _fail_if_skipped(outcome.get_result())

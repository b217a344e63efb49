"""Under CI a skip fails the run (tests/ci_skips.py), so a machine without Chromium, nginx
or Node cannot pass CI with those tests skipped; elsewhere a skip stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SKIPPING = """
import pytest

pytestmark = pytest.mark.skipif(True, reason="no frobnicator on PATH")


def test_needs_a_frobnicator():
    pass
"""

SKIPPING_INSIDE = """
import pytest


def test_runs():
    pass


def test_skips_itself():
    pytest.skip("no chromium on PATH")


@pytest.mark.xfail(reason="known", strict=True)
def test_expected_to_fail():
    assert False
"""

SKIPPING_AT_COLLECTION = """
import pytest

pytest.skip("no node on PATH", allow_module_level=True)
"""


def run_pytest(folder: Path, source: str, ci: str | None) -> subprocess.CompletedProcess:
    """pytest with only the CI plugin, in a process of its own, on one test file."""
    (folder / "test_sample.py").write_text(source)
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(TESTS)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-rA"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (SKIPPING, "no frobnicator on PATH"),
        (SKIPPING_INSIDE, "no chromium on PATH"),
        (SKIPPING_AT_COLLECTION, "no node on PATH"),
    ],
    ids=["skipif", "skip-in-test", "skip-at-collection"],
)
def test_a_skip_fails_the_run_under_ci(tmp_path, source, reason):
    result = run_pytest(tmp_path, source, ci="1")
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"skipped under CI, where every test must run: {reason}" in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_outside_ci_a_skip_stays_a_skip(tmp_path, ci):
    result = run_pytest(tmp_path, SKIPPING_INSIDE, ci=ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped, 1 xfailed" in result.stdout.splitlines()[-1]


def test_under_ci_an_expected_failure_is_no_skip(tmp_path):
    result = run_pytest(tmp_path, SKIPPING_INSIDE, ci="true")
    assert result.returncode == 1
    assert "1 failed, 1 passed, 1 xfailed" in result.stdout.splitlines()[-1]

"""The soak (`make soak`, chaos/soak.py), run for under a minute at a small scale so that
the tool cannot rot between its long runs: it must end with a verdict and its samples."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from servers import ROOT

from chaos.soak import FIELDS, Samples

#: The soak's own length; start-up, connecting and the final analysis add ~25 s.
SOAK_MINUTES = 0.75
SAMPLE_S = 5


@pytest.mark.e2e
def test_a_short_soak_writes_its_samples_and_gives_a_verdict(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "chaos/soak.py",
            *("--minutes", str(SOAK_MINUTES), "--sample-s", str(SAMPLE_S)),
            *("--connections", "100", "--users", "20", "--rate", "20", "--churn-per-s", "0.5"),
            *("--out-dir", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    lines = output.strip().splitlines()
    # A verdict: PASS, or FAIL naming what grew (a minute is too short for growth to
    # mean much, so either will do); never a traceback.
    assert result.returncode in (0, 1), output
    assert lines and (lines[-1] == "PASS" or lines[-1].startswith("FAIL")), output
    assert "lost 0, reordered 0," in output, output
    with open(tmp_path / "soak.csv", newline="") as samples:
        rows = list(csv.DictReader(samples))
    samples_taken = int(SOAK_MINUTES * 60 // SAMPLE_S) + 1
    assert len(rows) == 2 * samples_taken, rows  # one row per worker per sample
    assert all(int(row["rss_kb"]) > 0 and int(row["greenlets"]) > 0 for row in rows), rows
    assert max(int(row["connections"]) for row in rows) > 0, rows


def test_each_sample_is_on_disk_as_soon_as_it_is_taken(tmp_path):
    """A run that dies keeps every sample it took: soak.csv is flushed after each one."""
    path = tmp_path / "soak.csv"
    samples = Samples(path)
    try:
        row = dict.fromkeys(FIELDS, 1)
        samples.add([row, {**row, "pid": 2}])
        with open(path, newline="") as written:
            assert len(list(csv.DictReader(written))) == 2
        samples.add([{**row, "elapsed_s": 60}])
        with open(path, newline="") as written:
            assert [r["elapsed_s"] for r in csv.DictReader(written)] == ["1", "1", "60"]
    finally:
        samples.close()

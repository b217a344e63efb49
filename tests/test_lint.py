"""The code stays ruff clean (check and format), as `make lint` says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_check_and_format_are_clean():
    for command in ([str(RUFF), "check", "."], [str(RUFF), "format", "--check", "."]):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr

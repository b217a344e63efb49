"""Headless Chromium for the browser tests and the chaos run's browser part."""

from __future__ import annotations

import shutil

#: Debian's Chromium (`make system-tools` installs it where it can), or None.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags for a root user on a machine without a display or outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

"""The open-file limit: a process holding thousands of sockets needs more than the soft
limit's usual 1,024. The hard limit is the most it may have (20,000 on the benchmark
machine), and raising the soft limit up to it needs no privilege."""

from __future__ import annotations

import resource


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new limit.

    Usable as a `preexec_fn`, so a child (gunicorn, say) starts with the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard

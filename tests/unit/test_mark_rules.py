"""Which delivered mark waits to be written, and when (push/rules/marks.py)."""

from __future__ import annotations

import pytest

from push.rules.marks import MARK_INTERVAL_S, flush_wait_s, newer


@pytest.mark.parametrize(
    ("key", "waiting", "replaces"),
    [
        ((5, 0), None, True),  # nothing waits
        ((6, 0), (5, 0), True),
        ((5, 1), (5, 0), True),
        ((5, 0), (5, 0), False),  # the same: kept as it was
        ((4, 9), (5, 0), False),  # an older one never moves a mark back
    ],
)
def test_only_a_newer_mark_replaces_the_waiting_one(key, waiting, replaces):
    assert newer(key, waiting) is replaces


@pytest.mark.parametrize(
    ("last", "now", "wait"),
    [
        (10.0, 10.0, MARK_INTERVAL_S),  # just written: wait a whole interval
        (10.0, 10.0 + MARK_INTERVAL_S / 2, MARK_INTERVAL_S / 2),
        (10.0, 10.0 + MARK_INTERVAL_S, 0.0),
        (10.0, 20.0, 10.0 + MARK_INTERVAL_S - 20.0),  # long ago: at once (<= 0)
    ],
)
def test_marks_are_written_at_most_every_mark_interval(last, now, wait):
    assert flush_wait_s(last, now) == pytest.approx(wait)

"""The shared harness's waits and percentiles (tests/harness/), without any server: the
tests, the benchmarks and the chaos runs all read their deadlines and figures through them."""

from __future__ import annotations

import itertools

import pytest

from tests.harness.stats import percentiles, summary
from tests.harness.waits import poll, wait_for, wait_until


def test_wait_until_returns_the_truthy_value_and_fails_at_the_deadline_naming_what():
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "done", timeout=5, interval=0) == "done"
    with pytest.raises(AssertionError, match="timed out waiting for the moon"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, what="the moon")


def test_poll_gives_the_last_value_seen_and_wait_for_whether_it_held():
    seen = iter(range(100))
    held, last = poll(lambda: (False, next(seen)), timeout=0.05, interval=0.01)
    assert not held and last > 0
    assert wait_for(lambda: True, timeout=0) is True
    assert wait_for(lambda: False, timeout=0.02, interval=0.01) is False


def test_percentiles_are_samples_at_rank_floor_q_n_without_interpolation():
    samples = [5_000_000, 1_000_000, 4_000_000, 2_000_000, 3_000_000]  # ns
    found = percentiles(samples, (0.5, 0.9, 0.99), scale=1e6)
    assert found == {"n": 5, "p50": 3.0, "p90": 5.0, "p99": 5.0, "max": 5.0}
    assert percentiles([], (0.5,)) is None


def test_summary_is_median_min_max_of_the_measurements_present():
    assert summary([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert summary([None]) is None

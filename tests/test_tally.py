"""The delivery path's metrics, summed in the process first (push/delivery/tally.py)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from push.delivery.tally import Tally
from push.metrics import DELIVERY_SECONDS


def histogram_samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    (family,) = histogram.collect()
    return {(s.name, s.labels.get("le", "")): s.value for s in family.samples}


def test_a_flush_adds_what_each_observe_would_have(monkeypatch):
    """Delays summed per bucket and added at once leave the histogram as one observe per
    delay would (prometheus-client's internals are used: this pins them)."""
    delays = [0.0004, 0.001, 0.0011, 0.03, 0.7, 3.0, 100.0, 0.0]
    twin = Histogram("twin_seconds", "a twin", buckets=DELIVERY_SECONDS._upper_bounds[:-1])
    for delay in delays:
        twin.observe(delay)
    before = histogram_samples(DELIVERY_SECONDS)
    tally = Tally()
    monkeypatch.setattr(tally, "_deferred", True)  # wait for the flush, as under gevent
    monkeypatch.setattr(tally, "_soon", lambda: None)
    for delay in delays:
        tally.delay(delay)
    assert histogram_samples(DELIVERY_SECONDS) == before  # nothing yet
    tally.flush()
    after = histogram_samples(DELIVERY_SECONDS)
    added = {
        (name.replace("push_delivery", "twin"), le): after[(name, le)] - before[(name, le)]
        for name, le in after
        if not name.endswith("_created")
    }
    expected = {
        key: value for key, value in histogram_samples(twin).items() if "created" not in key[0]
    }
    assert added == expected


def test_counts_wait_for_the_flush_and_then_add_up():
    counter = Counter("tally_test", "a counter")
    tally = Tally()
    tally._deferred = True
    tally._soon = lambda: None
    tally.count(counter, 3)
    tally.count(counter)
    assert counter._value.get() == 0
    tally.flush()
    assert counter._value.get() == 4
    tally.flush()
    assert counter._value.get() == 4


def test_outside_gevent_every_count_goes_through_at_once():
    counter = Counter("tally_direct", "a counter")
    tally = Tally()
    tally._deferred = False
    tally.count(counter, 2)
    assert counter._value.get() == 2

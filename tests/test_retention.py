"""Storage that stays bounded: mailboxes held to a cap and a TTL (by the publish script, the
drain and the sweep), dead letters with a TTL and a byte bound, idempotency records per
API key bounded in bytes. Scripts against a real Redis, then end to end under gunicorn."""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest
import redis
from clients import open_sse, wait_until
from conftest import API_KEYS, _start_service
from prometheus_client import REGISTRY

from push import publish, publish_many, publishing
from push.delivery.mover import drain
from push.delivery.retention import Sweeper, scan_pattern, user_id_of
from push.model.keys import user_keys
from push.model.settings import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTER_MAX_COUNT,
    MAILBOX_EXPIRY_MARGIN_S,
    ConfigError,
    DeliverySettings,
    load_config,
    mailbox_expiry_ms,
)
from push.publishing import IdempotencyClaim
from push.storage import drops
from push.storage.drops import MAILBOX_FULL, Throttle
from push.storage.scripts import script

MAILBOX = "user_{user_id}_messages"


def settings(**overrides: str) -> DeliverySettings:
    return DeliverySettings.from_config(load_config({"PUSH_DEMO": "1", **overrides}))


def expired(reason: str) -> float:
    """push_messages_expired_total{reason} of this process."""
    return REGISTRY.get_sample_value("push_messages_expired_total", {"reason": reason}) or 0.0


def evicted() -> float:
    """push_idempotency_evicted_total of this process."""
    return REGISTRY.get_sample_value("push_idempotency_evicted_total") or 0.0


@pytest.fixture(autouse=True)
def fresh_log_throttle(monkeypatch):
    """Each test sees its first log lines (the throttles are per process)."""
    monkeypatch.setattr(drops, "_logged", Throttle())
    monkeypatch.setattr(publishing, "_evictions_logged", Throttle())


def age(r, mailbox: str, seconds: float) -> None:
    """Make the mailbox's last write (its marker's time) `seconds` older."""
    marker = user_keys(mailbox.split("_")[1], MAILBOX).swept
    written, length, head = r.get(marker).split()
    r.set(marker, f"{int(written) - int(seconds * 1000)} {length} {head}", keepttl=True)


# Settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUSH_MAILBOX_MAX", "0"),
        ("PUSH_MAILBOX_MAX", "many"),
        ("PUSH_MAILBOX_TTL_S", "0"),
        ("PUSH_MAILBOX_SWEEP_S", "0"),
        ("PUSH_DEAD_LETTER_TTL_S", "-1"),
        ("PUSH_IDEMPOTENCY_MAX_BYTES", "0"),
    ],
)
def test_a_wrong_bound_names_its_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_config({"PUSH_DEMO": "1", variable: value})


def test_the_bounds_default_to_generous_values():
    config = settings()
    assert (config.mailbox_max, config.mailbox_ttl_s) == (10_000, 30 * 86400)
    assert config.dead_letter_ttl_s == 7 * 86400
    assert load_config({"PUSH_DEMO": "1"})["PUSH_IDEMPOTENCY_MAX_BYTES"] == 64 * 1024 * 1024


# The publish script -------------------------------------------------------------------


def test_publish_past_the_cap_keeps_the_newest_and_counts_the_drop(r, caplog):
    keys = user_keys("capped", MAILBOX)
    before = expired("mailbox_full")
    with caplog.at_level(logging.WARNING, logger="push"):
        for i in range(15):
            publish(r, "capped", str(i), mailbox_max=10)
    assert r.lrange(keys.mailbox, 0, -1) == [str(i) for i in range(14, 4, -1)]
    assert expired("mailbox_full") == before + 5
    assert "mailbox full mailbox=user_capped_messages dropped=1" in caplog.text


def test_publish_many_holds_every_mailbox_to_the_cap(r):
    r.lpush("user_a_messages", *range(10))
    publish_many(r, ["a", "b"], "newest", mailbox_max=10)
    assert r.llen("user_a_messages") == 10
    assert r.lindex("user_a_messages", 0) == "newest"
    assert r.lindex("user_a_messages", -1) == "1"  # "0", the oldest, went
    assert r.lrange("user_b_messages", 0, -1) == ["newest"]


def test_publish_sets_the_mailbox_ttl_and_renews_it(r):
    publish(r, "aging", "one", mailbox_ttl_s=3600)
    expiry = mailbox_expiry_ms(3600)
    assert expiry - 5000 < r.pttl("user_aging_messages") <= expiry
    r.pexpire("user_aging_messages", 10_000)
    publish(r, "aging", "two", mailbox_ttl_s=3600)
    assert r.pttl("user_aging_messages") > expiry - 5000


def test_the_expiry_is_the_ttl_plus_a_fixed_margin():
    assert MAILBOX_EXPIRY_MARGIN_S == 86400
    assert mailbox_expiry_ms(5) == (5 + 86400) * 1000
    assert mailbox_expiry_ms(30 * 86400) == 31 * 86400 * 1000


@pytest.mark.parametrize("cap", [0, -1])
def test_publish_refuses_a_cap_below_one(r, cap):
    with pytest.raises(ValueError, match="mailbox_max"):
        publish(r, "7", "x", mailbox_max=cap)
    assert not r.exists("user_7_messages")


# The drain script ---------------------------------------------------------------------


def test_a_drain_holds_the_mailbox_to_the_cap_before_it_moves(store, r, caplog):
    """An online user's raw LPUSH backlog: the drain drops the oldest past the cap."""
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *range(30))
    before = expired("mailbox_full")
    with caplog.at_level(logging.WARNING, logger="push"):
        result = drain(store, keys, settings(PUSH_MAILBOX_MAX="10"))
    assert result.capped == 20
    assert [entry.data for entry in result.entries] == [str(i) for i in range(20, 30)]
    assert expired("mailbox_full") == before + 20
    assert "mailbox full mailbox=user_1_messages dropped=20" in caplog.text


def test_a_drain_renews_the_expiry_of_a_backlog_it_leaves(store, r):
    """A user online behind a long backlog: what waits in the mailbox does not age out."""
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *range(30))
    r.pexpire(keys.mailbox, 5000)
    config = settings(PUSH_DRAIN_BATCH="10", PUSH_HISTORY_MAX="20", PUSH_MAILBOX_TTL_S="3600")
    assert drain(store, keys, config).more
    assert r.pttl(keys.mailbox) > mailbox_expiry_ms(3600) - 5000


def test_a_mailbox_with_a_ttl_drained_empty_and_written_again_keeps_working(store, r):
    keys = user_keys("1", MAILBOX)
    config = settings(PUSH_MAILBOX_TTL_S="3600")
    publish(r, "1", "first", mailbox_ttl_s=3600)
    assert [entry.data for entry in drain(store, keys, config).entries] == ["first"]
    assert not r.exists(keys.mailbox)
    publish(r, "1", "second", mailbox_ttl_s=3600)
    assert r.pttl(keys.mailbox) > 0
    r.lpush(keys.mailbox, "raw")
    assert [entry.data for entry in drain(store, keys, config).entries] == ["second", "raw"]


def test_a_drain_keeps_the_newest_dead_letter_max_count(store, r, monkeypatch):
    """The drain keeps as many dead letters as DEAD_LETTER_MAX_COUNT says."""
    import push.delivery.mover

    monkeypatch.setattr(push.delivery.mover, "DEAD_LETTER_MAX_COUNT", 3)
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *(b"\xff %d" % i for i in range(5)))
    assert drain(store, keys, settings()).dead == 5
    assert r.llen(keys.dead) == 3
    assert DEAD_LETTER_MAX_COUNT == 1000


def test_a_drain_that_leaves_mail_stamps_the_marker_and_one_that_empties_drops_it(store, r):
    keys = user_keys("1", MAILBOX)
    r.lpush(keys.mailbox, *range(5))
    config = settings(PUSH_DRAIN_BATCH="3")
    drain(store, keys, config)
    written, length, _ = r.get(keys.swept).split()
    assert int(length) == 2 and abs(int(written) - time.time() * 1000) < 5000
    drain(store, keys, config)
    assert not r.exists(keys.mailbox, keys.swept)


def test_dead_letters_get_a_ttl_and_are_cut_to_a_byte_bound(store, r, redis_server):
    keys = user_keys("1", MAILBOX)
    config = settings(PUSH_MAX_MESSAGE_BYTES="64", PUSH_DEAD_LETTER_TTL_S="600")
    huge = b"y" * 100_000
    r.lpush(keys.mailbox, b"ok", huge, b"\xff short")
    assert drain(store, keys, config).dead == 2
    raw = redis.Redis.from_url(redis_server.url)
    try:
        cut, short = raw.lrange(keys.dead, 0, -1)[::-1]
        marker = b"[truncated: 100000 bytes] "
        assert cut == marker + huge[:DEAD_LETTER_MAX_BYTES]
        assert short == b"\xff short"  # within the bound: kept whole
        assert 590_000 < raw.pttl(keys.dead) <= 600_000
    finally:
        raw.close()


# The sweep ----------------------------------------------------------------------------


def sweeper(store, **overrides: str) -> Sweeper:
    return Sweeper(store, settings(**overrides), interval_s=60)


@pytest.mark.parametrize("backend", ["redis", "cluster"])
def test_the_sweep_trims_a_raw_lpush_mailbox_and_gives_it_a_ttl(store, r):
    r.lpush("user_offline_messages", *range(25))
    r.lpush("user_small_messages", "a")
    before = expired("mailbox_full")
    swept = sweeper(store, PUSH_MAILBOX_MAX="10", PUSH_MAILBOX_TTL_S="3600")
    assert swept.turn() == (15, 0)
    assert r.lrange("user_offline_messages", 0, -1) == [str(i) for i in range(24, 14, -1)]
    assert expired("mailbox_full") == before + 15
    for mailbox in ("user_offline_messages", "user_small_messages"):
        assert 0 < r.pttl(mailbox) <= mailbox_expiry_ms(3600)
    assert swept.turn() is None  # one turn per interval, fleet-wide: the lease is taken


def test_the_sweep_renews_the_ttl_of_a_mailbox_that_grew_only(store, r):
    """A raw LPUSH renews no TTL: the sweep stamps a mailbox that grew as written now."""
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush("user_raw_messages", "a")
    swept.turn(force=True)
    age(r, "user_raw_messages", 600)
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") <= mailbox_expiry_ms(3600) - 590_000  # not written
    r.lpush("user_raw_messages", "b")
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") > mailbox_expiry_ms(3600) - 5000
    r.pexpire("user_raw_messages", 10 * mailbox_expiry_ms(3600))  # a TTL since lowered
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") <= mailbox_expiry_ms(3600)


def test_the_sweep_drops_a_mailbox_past_its_ttl_and_counts_it(store, r, caplog):
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush("user_gone_messages", "a", "b", "c")
    swept.turn(force=True)
    age(r, "user_gone_messages", 3599)
    assert swept.turn(force=True) == (0, 0)  # a second to go
    age(r, "user_gone_messages", 1)
    before = expired("mailbox_ttl")
    with caplog.at_level(logging.WARNING, logger="push"):
        assert swept.turn(force=True) == (0, 3)
    assert not r.exists("user_gone_messages", "{user_gone_messages}:swept")
    assert expired("mailbox_ttl") == before + 3
    assert "mailbox expired mailbox=user_gone_messages dropped=3" in caplog.text


@pytest.mark.parametrize("backend", ["redis", "cluster"])
def test_the_sweep_after_the_ttl_was_raised_keeps_fresh_mail(store, r):
    """Written by a service with a 1 h TTL, swept by one raised to 2 h: the message of a
    moment ago stays, and its expiry follows the sweeper's TTL."""
    publish(r, "fresh", "just now", mailbox_ttl_s=3600)
    assert sweeper(store, PUSH_MAILBOX_TTL_S="7200").turn(force=True) == (0, 0)
    assert r.lrange("user_fresh_messages", 0, -1) == ["just now"]
    assert r.pttl("user_fresh_messages") > mailbox_expiry_ms(7200) - 5000


def test_the_sweep_keeps_fresh_mail_of_a_helper_with_a_shorter_ttl(store, r):
    """A producer's helper with mailbox_ttl_s=3600 under a 30-day service: the sweep counts
    from the write, not from the expiry the helper gave."""
    publish(r, "helper", "just now", mailbox_ttl_s=3600)
    swept = sweeper(store)
    assert swept.turn(force=True) == (0, 0)
    assert r.lrange("user_helper_messages", 0, -1) == ["just now"]
    age(r, "user_helper_messages", 7200)  # older than the helper's TTL, not the service's
    assert swept.turn(force=True) == (0, 0)
    assert r.llen("user_helper_messages") == 1
    age(r, "user_helper_messages", 30 * 86400)
    assert swept.turn(force=True) == (0, 1)


def test_the_sweep_sees_a_raw_lpush_before_it_looks_at_age(store, r):
    """A raw LPUSH just before the TTL's end: the mailbox counts as written now."""
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    publish(r, "edge", "old", mailbox_ttl_s=3600)
    age(r, "user_edge_messages", 3599)
    r.pexpire("user_edge_messages", mailbox_expiry_ms(3600) - 3600 * 1000 - 1)
    r.lpush("user_edge_messages", "new")
    assert swept.turn(force=True) == (0, 0)
    assert r.lrange("user_edge_messages", 0, -1) == ["new", "old"]
    assert r.pttl("user_edge_messages") > mailbox_expiry_ms(3600) - 5000


def test_the_sweep_sees_a_raw_lpush_that_did_not_lengthen_the_mailbox(store, r):
    """Another consumer took one and a producer pushed one: same length, new mail."""
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush("user_same_messages", "a", "b")
    swept.turn(force=True)
    age(r, "user_same_messages", 3600)
    r.pexpire("user_same_messages", mailbox_expiry_ms(3600) - 3600 * 1000 - 1)
    r.rpop("user_same_messages")
    r.lpush("user_same_messages", "c")
    assert swept.turn(force=True) == (0, 0)
    assert r.lrange("user_same_messages", 0, -1) == ["c", "b"]


@pytest.mark.parametrize("backend", ["redis", "cluster"])
def test_raw_lpush_after_a_partial_drain_is_seen_by_the_sweep(store, r):
    """A user drains part of a backlog and goes offline; a later raw LPUSH leaves the
    mailbox shorter than the sweep last saw it. It counts as written, not as yesterday's."""
    keys = user_keys("partial", MAILBOX)
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush(keys.mailbox, *range(5))
    swept.turn(force=True)
    drain(store, keys, settings(PUSH_DRAIN_BATCH="3", PUSH_MAILBOX_TTL_S="3600"))
    r.lpush(keys.mailbox, "later")
    age(r, keys.mailbox, 3600)
    r.pexpire(keys.mailbox, mailbox_expiry_ms(3600) - 3600 * 1000 - 1)
    assert swept.turn(force=True) == (0, 0)
    assert r.lrange(keys.mailbox, 0, -1) == ["later", "4", "3"]


def test_the_sweep_skips_keys_that_are_no_mailbox_of_ours(store, r, caplog):
    r.set("user_notalist_messages", "x")
    r.lpush("user_bad id_messages", *range(20))
    r.lpush("user_ok_messages", *range(20))
    with caplog.at_level(logging.WARNING, logger="push"):
        assert sweeper(store, PUSH_MAILBOX_MAX="10").turn() == (10, 0)
    assert r.llen("user_bad id_messages") == 20
    assert r.get("user_notalist_messages") == "x"
    assert "WRONGTYPE" not in caplog.text and "skipped" not in caplog.text


def test_scan_patterns_and_user_ids_of_keys():
    assert scan_pattern("user_{user_id}_messages") == "user_*_messages"
    assert scan_pattern("q[1]*{user_id}") == "q\\[1\\]\\**"
    assert user_id_of("user_{user_id}_messages", "user_42_messages") == "42"
    assert user_id_of("user_{user_id}_messages", "user__messages") is None
    assert user_id_of("user_{user_id}_messages", "user_a b_messages") is None


# Idempotency scopes and quotas ---------------------------------------------------------


def test_one_idempotency_key_in_two_scopes_does_not_collide(r):
    publish(r, "7", "from a", idempotency_key="k", idempotency_scope="a")
    publish(r, "7", "from b", idempotency_key="k", idempotency_scope="b")
    assert r.lrange("user_7_messages", 0, -1) == ["from b", "from a"]
    assert not any("k" in key.rsplit(":", 1)[-1] for key in r.keys("*idempotency*"))


@pytest.mark.parametrize("backend", ["redis", "cluster"])
def test_past_its_bytes_a_scope_forgets_its_oldest_records_and_queues(r, caplog):
    """At the bound nothing is refused: the oldest records go, counted and logged once."""
    before = evicted()
    with caplog.at_level(logging.WARNING, logger="push"):
        for i in range(6):
            publish(r, "7", f"m{i}", idempotency_key=f"k{i}", idempotency_max_bytes=1024)
    assert r.lrange("user_7_messages", 0, -1) == [f"m{i}" for i in range(5, -1, -1)]
    gone = evicted() - before
    assert gone >= 3
    assert int(r.get("{push:idempotency:direct}:bytes")) <= 1024
    assert caplog.text.count("idempotency records evicted scope=direct") == 1
    # The newest is remembered (a retry queues nothing); the oldest was forgotten.
    publish(r, "7", "m5", idempotency_key="k5", idempotency_max_bytes=1024)
    assert r.llen("user_7_messages") == 6
    publish(r, "7", "m0", idempotency_key="k0", idempotency_max_bytes=1024)
    assert r.llen("user_7_messages") == 7


def test_eviction_keeps_a_record_whose_first_call_is_still_running(r):
    claim = IdempotencyClaim("direct", "slow", 1024)
    claimed = script(r, "idempotency_claim.lua")(keys=claim.keys, args=[claim.member, 60_000])
    assert claimed == [1]
    for i in range(6):
        publish(r, "7", f"m{i}", idempotency_key=f"k{i}", idempotency_max_bytes=1024)
    assert r.get(claim.record) == "in-progress"
    assert int(r.get(claim.total)) <= 1024


def test_a_record_larger_than_the_bound_is_kept_alone(r):
    users = [str(i) for i in range(200)]
    publish_many(r, users, "x", idempotency_key="big", idempotency_max_bytes=1024)
    publish_many(r, users, "x", idempotency_key="big", idempotency_max_bytes=1024)
    assert r.llen("user_0_messages") == 1
    assert int(r.get("{push:idempotency:direct}:bytes")) > 1024


def test_expired_records_give_their_bytes_back(r):
    publish(r, "7", "a", idempotency_key="k", idempotency_max_bytes=1024)
    used = int(r.get("{push:idempotency:direct}:bytes"))
    assert used > 0
    r.zadd(
        "{push:idempotency:direct}:index",
        {next(iter(r.zrange("{push:idempotency:direct}:index", 0, 0))): 1},
    )
    publish(r, "7", "b", idempotency_key="other", idempotency_max_bytes=1024)
    assert int(r.get("{push:idempotency:direct}:bytes")) < 2 * used
    assert r.hlen("{push:idempotency:direct}:sizes") == 1


def test_a_failed_publish_gives_its_claim_back(r):
    r.set("user_8_messages", "not a list")
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            publish(r, "8", "x", idempotency_key="k", idempotency_max_bytes=1024)
    assert not r.exists("{push:idempotency:direct}:" + "k")
    assert r.zcard("{push:idempotency:direct}:index") == 0
    publish(r, "9", "y", idempotency_key="k", idempotency_max_bytes=1024)
    assert r.lrange("user_9_messages", 0, -1) == ["y"]


# Log lines ----------------------------------------------------------------------------


def test_the_throttle_logs_once_a_window_with_the_count_since():
    throttle = Throttle(every_s=60, size=2)
    assert throttle.add("a", 1, now=0) == 1
    assert throttle.add("a", 1, now=10) == 0
    assert throttle.add("a", 2, now=59) == 0
    assert throttle.add("a", 1, now=60) == 4
    assert throttle.add("b", 1, now=61) == 1
    assert throttle.add("c", 1, now=62) == 1  # full: the longest-remembered ("a") goes
    assert throttle.add("a", 1, now=63) == 1


def test_a_chatty_producer_at_the_cap_logs_a_line_a_minute_and_counts_each(r, caplog):
    before = expired(MAILBOX_FULL)
    with caplog.at_level(logging.WARNING, logger="push"):
        for i in range(20):
            publish(r, "chatty", str(i), mailbox_max=5)
    assert expired(MAILBOX_FULL) == before + 15
    assert caplog.text.count("mailbox full mailbox=user_chatty_messages") == 1


# End to end ---------------------------------------------------------------------------

#: A mailbox template of these tests alone: the service's sweep touches no other test's keys.
KEPT = "kept_{user_id}_box"


@pytest.fixture(scope="module")
def bounded(redis_server, tmp_path_factory):
    """The service with a small cap and TTL, a fast sweep and 1 KiB of idempotency records."""
    server = _start_service(
        redis_server.url,
        tmp_path_factory.mktemp("gunicorn-retention"),
        PUSH_MAILBOX_KEY=KEPT,
        PUSH_MAILBOX_MAX="10",
        PUSH_MAILBOX_TTL_S="5",
        PUSH_MAILBOX_SWEEP_S="0.2",
        PUSH_DEAD_LETTER_TTL_S="3600",
        PUSH_IDEMPOTENCY_MAX_BYTES="1024",
    )
    yield server
    server.stop()


def call(server, body, headers=None, key=API_KEYS[1]):
    request = urllib.request.Request(
        server.base_url + "/api/publish",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read()), dict(refused.headers)


def expired_on_metrics(server, reason: str) -> float:
    with urllib.request.urlopen(server.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    line = f'push_messages_expired_total{{reason="{reason}"}} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


def test_the_api_past_the_cap_keeps_the_newest_counts_and_logs(bounded, r, user_id):
    mailbox = KEPT.replace("{user_id}", user_id)
    for i in range(13):
        assert call(bounded, {"user_id": user_id, "data": str(i)})[0] == 202
    assert r.lrange(mailbox, 0, -1) == [str(i) for i in range(12, 2, -1)]
    assert 0 < r.pttl(mailbox) <= mailbox_expiry_ms(5)
    assert expired_on_metrics(bounded, "mailbox_full") >= 3
    assert f"mailbox full mailbox={mailbox} dropped=1" in bounded.log()


def test_raw_lpush_past_the_cap_is_trimmed_by_the_sweep(bounded, r, user_id):
    mailbox = KEPT.replace("{user_id}", user_id)
    r.lpush(mailbox, *range(25))
    wait_until(lambda: r.llen(mailbox) == 10, timeout=10, what="the sweep to trim")
    assert r.lrange(mailbox, 0, -1) == [str(i) for i in range(24, 14, -1)]
    assert r.pttl(mailbox) > 0
    wait_until(lambda: f"mailbox full mailbox={mailbox} dropped=15" in bounded.log())


def test_raw_lpush_mailbox_past_its_ttl_is_dropped_counted_and_logged(bounded, r, user_id):
    mailbox = KEPT.replace("{user_id}", user_id)
    r.lpush(mailbox, "a", "b")
    wait_until(lambda: r.pttl(mailbox) > 0, timeout=10, what="the sweep to give it a TTL")
    wait_until(lambda: not r.exists(mailbox), timeout=20, what="the sweep to drop it")
    wait_until(lambda: f"mailbox expired mailbox={mailbox} dropped=2" in bounded.log())
    assert expired_on_metrics(bounded, "mailbox_ttl") >= 2


def test_an_online_users_burst_past_the_cap_arrives_as_its_newest(bounded, r, user_id):
    mailbox = KEPT.replace("{user_id}", user_id)
    with open_sse(bounded.base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: r.get(user_keys(user_id, KEPT).mover))
        r.lpush(mailbox, *range(25))
        assert [event.data for event in stream.events(10)] == [str(i) for i in range(15, 25)]


def test_an_oversized_raw_payload_is_dead_lettered_cut_and_with_a_ttl(bounded, r, user_id):
    keys = user_keys(user_id, KEPT)
    with open_sse(bounded.base_url, {"user_id": user_id}) as stream:
        stream.wait_for_comment("connected")
        wait_until(lambda: r.get(user_keys(user_id, KEPT).mover))
        r.lpush(keys.mailbox, "z" * 70_000, "after")
        assert [event.data for event in stream.events(1)] == ["after"]
    (letter,) = r.lrange(keys.dead, 0, -1)
    assert letter == "[truncated: 70000 bytes] " + "z" * DEAD_LETTER_MAX_BYTES
    assert 3_500_000 < r.pttl(keys.dead) <= 3_600_000


def test_two_api_keys_with_one_idempotency_key_do_not_collide(bounded, r, user_id):
    headers = {"Idempotency-Key": f"order-{user_id}"}
    for key, text in ((API_KEYS[0], "first"), (API_KEYS[1], "second")):
        status, answer, _ = call(bounded, {"user_id": user_id, "data": text}, headers, key)
        assert (status, answer["queued"]) == (202, 1)
    assert r.lrange(KEPT.replace("{user_id}", user_id), 0, -1) == ["second", "first"]
    assert not any(key_text in name for name in r.keys("*") for key_text in API_KEYS)


def test_an_api_key_past_its_idempotency_bytes_evicts_its_oldest_and_queues(bounded, r, user_id):
    mailbox = KEPT.replace("{user_id}", user_id)
    for i in range(6):
        headers = {"Idempotency-Key": f"q{i}-{user_id}"}
        assert call(bounded, {"user_id": user_id, "data": i}, headers)[0] == 202
    assert r.llen(mailbox) == 6
    with urllib.request.urlopen(bounded.base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    (line,) = [row for row in text.splitlines() if row.startswith("push_idempotency_evicted_total")]
    assert float(line.split()[-1]) >= 3
    wait_until(lambda: "idempotency records evicted" in bounded.log())
    # The newest is remembered; the oldest was forgotten, so its retry queues again.
    assert (
        call(bounded, {"user_id": user_id, "data": 5}, {"Idempotency-Key": f"q5-{user_id}"})[0]
        == 202
    )
    assert r.llen(mailbox) == 6
    assert (
        call(bounded, {"user_id": user_id, "data": 0}, {"Idempotency-Key": f"q0-{user_id}"})[0]
        == 202
    )
    assert r.llen(mailbox) == 7

"""Storage that stays bounded: mailboxes held to a cap and a TTL (by the publish script, the
drain and the sweep), dead letters with a TTL and a byte bound, idempotency records per
API key with a quota. Scripts against a real Redis, then end to end under gunicorn."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest
import redis
from clients import open_sse, wait_until
from conftest import API_KEYS, _start_service
from prometheus_client import REGISTRY

from push import PublishError, publish, publish_many
from push.config import (
    DEAD_LETTER_MAX_BYTES,
    ConfigError,
    DeliverySettings,
    load_config,
    mailbox_expiry_ms,
)
from push.keys import user_keys
from push.mailbox import drain
from push.retention import Sweeper, scan_pattern, user_id_of

MAILBOX = "user_{user_id}_messages"


def settings(**overrides: str) -> DeliverySettings:
    return DeliverySettings.from_config(load_config({"PUSH_DEMO": "1", **overrides}))


def expired(reason: str) -> float:
    """push_messages_expired_total{reason} of this process."""
    return REGISTRY.get_sample_value("push_messages_expired_total", {"reason": reason}) or 0.0


# Settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUSH_MAILBOX_MAX", "0"),
        ("PUSH_MAILBOX_MAX", "many"),
        ("PUSH_MAILBOX_TTL_S", "0"),
        ("PUSH_MAILBOX_SWEEP_S", "0"),
        ("PUSH_DEAD_LETTER_TTL_S", "-1"),
        ("PUSH_IDEMPOTENCY_MAX", "0"),
    ],
)
def test_a_wrong_bound_names_its_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_config({"PUSH_DEMO": "1", variable: value})


def test_the_bounds_default_to_generous_values():
    config = settings()
    assert (config.mailbox_max, config.mailbox_ttl_s) == (10_000, 30 * 86400)
    assert config.dead_letter_ttl_s == 7 * 86400
    assert load_config({"PUSH_DEMO": "1"})["PUSH_IDEMPOTENCY_MAX"] == 100_000


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


def test_the_expiry_is_the_ttl_plus_a_margin_of_at_most_a_day():
    assert mailbox_expiry_ms(5) == 10_000
    assert mailbox_expiry_ms(30 * 86400) == 31 * 86400 * 1000


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
    """A raw LPUSH renews no TTL: the sweep renews it when the mailbox grew since."""
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush("user_raw_messages", "a")
    swept.turn(force=True)
    r.pexpire("user_raw_messages", mailbox_expiry_ms(3600) - 60_000)
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") <= mailbox_expiry_ms(3600) - 60_000  # not written
    r.lpush("user_raw_messages", "b")
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") > mailbox_expiry_ms(3600) - 60_000
    r.pexpire("user_raw_messages", 10 * mailbox_expiry_ms(3600))  # a TTL since lowered
    swept.turn(force=True)
    assert r.pttl("user_raw_messages") <= mailbox_expiry_ms(3600)


def test_the_sweep_drops_a_mailbox_past_its_ttl_and_counts_it(store, r, caplog):
    swept = sweeper(store, PUSH_MAILBOX_TTL_S="3600")
    r.lpush("user_gone_messages", "a", "b", "c")
    swept.turn(force=True)
    # Its TTL passed (Redis would expire it only a margin later).
    r.pexpire("user_gone_messages", mailbox_expiry_ms(3600) - 3600 * 1000 - 1)
    before = expired("mailbox_ttl")
    with caplog.at_level(logging.WARNING, logger="push"):
        assert swept.turn(force=True) == (0, 3)
    assert not r.exists("user_gone_messages", "{user_gone_messages}:swept")
    assert expired("mailbox_ttl") == before + 3
    assert "mailbox expired mailbox=user_gone_messages dropped=3" in caplog.text


def test_the_sweep_skips_keys_that_are_no_mailbox_of_ours(store, r):
    r.set("user_notalist_messages", "x")
    r.lpush("user_bad id_messages", *range(20))
    r.lpush("user_ok_messages", *range(20))
    assert sweeper(store, PUSH_MAILBOX_MAX="10").turn() == (10, 0)
    assert r.llen("user_bad id_messages") == 20


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


def test_the_idempotency_quota_refuses_new_keys_and_keeps_known_ones(r):
    for i in range(3):
        publish(r, "7", f"m{i}", idempotency_key=f"k{i}", idempotency_max=3)
    with pytest.raises(PublishError) as refused:
        publish(r, "7", "one too many", idempotency_key="k3", idempotency_max=3)
    assert refused.value.code == "idempotency_quota"
    assert 86_000 < refused.value.retry_after_s <= 86_400
    assert publish(r, "7", "m0", idempotency_key="k0", idempotency_max=3) == 0  # a retry
    publish(r, "7", "no key", idempotency_max=3)
    assert r.lrange("user_7_messages", 0, -1) == ["no key", "m2", "m1", "m0"]


def test_a_failed_publish_gives_its_quota_back(r):
    r.set("user_8_messages", "not a list")
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            publish(r, "8", "x", idempotency_key="k", idempotency_max=1)
    publish(r, "9", "y", idempotency_key="other", idempotency_max=1)


# End to end ---------------------------------------------------------------------------

#: A mailbox template of these tests alone: the service's sweep touches no other test's keys.
KEPT = "kept_{user_id}_box"


@pytest.fixture(scope="module")
def bounded(redis_server, tmp_path_factory):
    """The service with a small cap and TTL, a fast sweep and an idempotency quota of 3."""
    server = _start_service(
        redis_server.url,
        tmp_path_factory.mktemp("gunicorn-retention"),
        PUSH_MAILBOX_KEY=KEPT,
        PUSH_MAILBOX_MAX="10",
        PUSH_MAILBOX_TTL_S="5",
        PUSH_MAILBOX_SWEEP_S="0.2",
        PUSH_DEAD_LETTER_TTL_S="3600",
        PUSH_IDEMPOTENCY_MAX="3",
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


def test_an_api_key_past_its_idempotency_quota_gets_429(bounded, r, user_id):
    for i in range(3):
        headers = {"Idempotency-Key": f"q{i}"}
        assert call(bounded, {"user_id": user_id, "data": i}, headers)[0] == 202
    over = {"Idempotency-Key": "q3"}
    status, answer, headers = call(bounded, {"user_id": user_id, "data": 3}, over)
    assert (status, answer["error"]) == (429, "idempotency_quota")
    assert 86_000 < int(headers["Retry-After"]) <= 86_400
    # A retry of a known key, a publish without a key, and the other API key still work.
    assert call(bounded, {"user_id": user_id, "data": 0}, {"Idempotency-Key": "q0"})[0] == 202
    assert call(bounded, {"user_id": user_id, "data": "plain"})[0] == 202
    other = call(bounded, {"user_id": user_id, "data": 4}, over, API_KEYS[0])
    assert other[0] == 202
    assert r.llen(KEPT.replace("{user_id}", user_id)) == 5

"""Pure rules: user ids, key names, event ids, configuration."""

from __future__ import annotations

import pytest

from push.model.keys import (
    InvalidEventId,
    InvalidUserId,
    parse_event_id,
    user_keys,
    validate_user_id,
)
from push.model.redis_urls import parse_cluster_seeds
from push.model.settings import ConfigError, load_config


@pytest.mark.parametrize("good", ["42", "a", "x" * 64, "user.name", "org:7", "A-b_c.d:e", "..."])
def test_valid_user_ids(good):
    assert validate_user_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "x" * 65, "a b", "*", "{a}", "a}", "a/b", ".", "..", "a\0", "ü", "a\n", 42, None]
)
def test_invalid_user_ids(bad):
    with pytest.raises(InvalidUserId):
        validate_user_id(bad)


def test_every_key_of_a_user_shares_the_mailbox_hash_tag():
    keys = user_keys("42", "user_{user_id}_messages")
    assert keys.mailbox == "user_42_messages"
    assert keys.pending == "{user_42_messages}:pending"
    assert keys.history == "{user_42_messages}:history"
    assert keys.state == "{user_42_messages}:state"
    assert keys.dead == "{user_42_messages}:dead"
    assert keys.wake == "{user_42_messages}:wake"
    assert keys.drain_keys[0] == keys.mailbox


def test_the_mailbox_template_is_configurable():
    assert user_keys("7", "app:inbox:{user_id}").history == "{app:inbox:7}:history"


def test_event_ids_compare_in_delivery_order():
    assert parse_event_id("1732630000000-3") == (1732630000000, 3)
    assert parse_event_id("9-0") < parse_event_id("10-0") < parse_event_id("10-1")
    for bad in ["", "1", "1-", "-1", "a-1", "1-2-3", "1 -2", "1.0-0", "\u0661-\u0660", "\uff11-0"]:
        with pytest.raises(InvalidEventId):
            parse_event_id(bad)


DEMO = {"PUSH_DEMO": "1"}
SECRET = "s" * 32


def test_defaults_load_in_demo_mode():
    config = load_config(DEMO)
    assert config["PUSH_MAILBOX_KEY"] == "user_{user_id}_messages"
    assert config["PUSH_HEARTBEAT_S"] == 15
    assert config["PUSH_HISTORY_MAX"] == 1000
    assert config["PUSH_DEMO"] is True
    assert config["PUSH_JWT_ALGORITHMS"] == ("HS256",)
    assert config["PUSH_MAX_CONNECTIONS_PER_USER"] == 20


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUSH_HEARTBEAT_S", "soon"),
        ("PUSH_HEARTBEAT_S", "0"),
        ("PUSH_HISTORY_MAX", "1.5"),
        ("PUSH_HISTORY_MAX", "5"),
        ("PUSH_DEMO", "maybe"),
        ("PUSH_MAILBOX_KEY", "user_messages"),
        ("PUSH_MAILBOX_KEY", "{user_id}_{user_id}"),
        ("PUSH_MAILBOX_KEY", "{tag}_{user_id}"),
        ("REDIS_URL", "localhost:6379"),
        ("PUSH_OUTBOX_MAX", "-1"),
        ("PUSH_JWT_ALGORITHMS", "RS256"),
        ("PUSH_JWT_ALGORITHMS", "HS256,none"),
        ("PUSH_ALLOWED_ORIGINS", "app.example.com"),
        ("PUSH_ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("PUSH_MAX_CONNECTIONS_PER_USER", "0"),
        ("PUSH_MAILBOX_WATCH", "sometimes"),
        ("PUSH_MAILBOX_WATCH", "keyspace"),
        ("PUSH_BODY_TIMEOUT_S", "0"),
        ("PUSH_BODY_TIMEOUT_S", "forever"),
        ("PUSH_DEMO_FORCE", "please"),
    ],
)
def test_a_wrong_value_names_its_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        load_config({**DEMO, variable: value})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"PUSH_REDIS_CLUSTER": "1", "REDIS_URL": "redis+sentinel://h:26379/s"},
            "PUSH_REDIS_CLUSTER",
        ),
        ({"PUSH_REDIS_CLUSTER": "1", "REDIS_URL": "unix:///run/redis.sock"}, "PUSH_REDIS_CLUSTER"),
        ({"PUSH_REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7000/3"}, "database 0"),
        ({"PUSH_REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7000,h/0"}, "host:port"),
        ({"REDIS_URL": "redis://h:7000,h:7001/0"}, "PUSH_REDIS_CLUSTER=1"),
        ({"PUSH_REDIS_CLUSTER": "sometimes"}, "PUSH_REDIS_CLUSTER"),
    ],
)
def test_a_redis_url_that_does_not_fit_the_mode_is_refused(environ, named):
    with pytest.raises(ConfigError, match=named):
        load_config({**DEMO, **environ})


def test_a_comma_in_a_password_is_not_a_second_host():
    assert load_config({**DEMO, "REDIS_URL": "redis://u:a,b@h:6379/0"})["REDIS_URL"]


def test_cluster_seed_nodes_come_from_the_url():
    config = load_config(
        {**DEMO, "PUSH_REDIS_CLUSTER": "1", "REDIS_URL": "rediss://u:p@h1:7000,h2:7001/0"}
    )
    assert config["PUSH_REDIS_CLUSTER"] is True
    assert parse_cluster_seeds(config["REDIS_URL"]) == (
        "rediss://u:p@h1:7000",
        [("h1", 7000), ("h2", 7001)],
    )


def test_settings_that_contradict_each_other_are_refused():
    with pytest.raises(ConfigError, match="PUSH_HISTORY_MAX"):
        load_config({**DEMO, "PUSH_HISTORY_MAX": "100", "PUSH_DRAIN_BATCH": "80"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "PUSH_JWT_SECRET"),
        ({"PUSH_JWT_SECRET": "short"}, "PUSH_JWT_SECRET"),
        ({"PUSH_JWT_SECRET": SECRET, "PUSH_ALLOWED_ORIGINS": "*"}, "PUSH_ALLOWED_ORIGINS"),
    ],
)
def test_production_mode_refuses_to_start_without_a_strong_secret(environ, named):
    with pytest.raises(ConfigError, match=named):
        load_config(environ)


def test_production_mode_starts_with_a_secret_and_listed_origins():
    config = load_config(
        {"PUSH_JWT_SECRET": SECRET, "PUSH_ALLOWED_ORIGINS": "https://a.example, http://b:8080/"}
    )
    assert config["PUSH_ALLOWED_ORIGINS"] == ("https://a.example", "http://b:8080")


def test_demo_mode_may_allow_every_origin():
    assert load_config({**DEMO, "PUSH_ALLOWED_ORIGINS": "*"})["PUSH_ALLOWED_ORIGINS"] == ("*",)


@pytest.mark.parametrize("value", ["auto", "notify", "block", "NOTIFY", " block "])
def test_the_mailbox_watch_modes(value):
    assert load_config({**DEMO, "PUSH_MAILBOX_WATCH": value})["PUSH_MAILBOX_WATCH"] == (
        value.strip().lower()
    )
    assert load_config(DEMO)["PUSH_MAILBOX_WATCH"] == "auto"

"""What the watcher does after an error reply to a drain (push/rules/drain_errors.py)."""

from __future__ import annotations

import pytest

from push.rules.drain_errors import (
    LATER,
    PLACE_AGAIN,
    RECONNECT,
    RELOAD_SCRIPTS,
    SOON,
    after_error,
)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("NOSCRIPT No matching script. Please use EVAL.", RELOAD_SCRIPTS),
        ("READONLY You can't write against a read only replica.", RECONNECT),
        ("MOVED 3999 127.0.0.1:6381", PLACE_AGAIN),
        ("ASK 3999 127.0.0.1:6381", PLACE_AGAIN),
        ("TRYAGAIN Multiple keys request during rehashing of slot", SOON),
        ("CLUSTERDOWN The cluster is down", SOON),
        ("LOADING Redis is loading the dataset in memory", SOON),
        ("BUSY Redis is busy running a script.", SOON),
        ("MASTERDOWN Link with MASTER is down", SOON),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", LATER),
        ("ERR something else", LATER),
        ("MOVEDX not a word we know", LATER),  # the first word, not a prefix
        ("", LATER),
    ],
)
def test_an_error_reply_decides_what_comes_next_by_its_first_word(reply, verdict):
    assert after_error(reply) == verdict

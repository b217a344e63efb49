"""Flow control (push/rules/window.py), as tables."""

from __future__ import annotations

import pytest

from push.rules.window import (
    AGAIN,
    SPARSE_WAIT_S,
    WAIT_FOR_MAIL,
    WAIT_FOR_ROOM,
    after_drain,
    dense,
    gathering,
    sparse,
)


@pytest.mark.parametrize(
    ("more", "room", "verdict"),
    [
        (True, 5, AGAIN),  # a backlog and room: the next batch at once
        (True, 1, AGAIN),
        (True, 0, WAIT_FOR_ROOM),  # a backlog and a full window: wait for the mark
        (False, 5, WAIT_FOR_MAIL),
        (False, 0, WAIT_FOR_MAIL),  # nothing left: a full window does not matter
    ],
)
def test_after_a_drain_a_drainer_drains_again_waits_for_room_or_waits_for_mail(more, room, verdict):
    assert after_drain(more, room) == verdict


@pytest.mark.parametrize(("moved", "is_dense"), [(0, False), (1, False), (2, True), (500, True)])
def test_mail_is_dense_when_a_drain_moved_more_than_one(moved, is_dense):
    assert dense(moved) is is_dense


@pytest.mark.parametrize(
    ("gather_until", "now", "waits"),
    [(10.05, 10.0, True), (10.0, 10.0, False), (9.0, 10.0, False), (0.0, 10.0, False)],
)
def test_a_drain_waits_only_while_dense_mail_gathers(gather_until, now, waits):
    assert gathering(gather_until, now) is waits


@pytest.mark.parametrize(
    ("moved", "waited_s", "is_sparse"),
    [
        (0, 0.0, True),
        (1, 0.0, True),  # nothing to batch
        (2, 0.0, False),  # dense: the next batch gathers a round trip
        (2, SPARSE_WAIT_S, False),
        (2, SPARSE_WAIT_S + 0.01, True),  # a long wait: mail is sparse again
    ],
)
def test_mail_is_sparse_after_a_small_drain_or_a_long_wait(moved, waited_s, is_sparse):
    assert sparse(moved, waited_s) is is_sparse

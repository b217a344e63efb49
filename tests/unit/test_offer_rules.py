"""Which entries a tab keeps from an offer (push/rules/offers.py), as tables."""

from __future__ import annotations

import pytest

from push.model.entries import Entry, history_entry
from push.rules.offers import (
    CUT,
    STALLED_S,
    TAKE_ALL,
    TAKE_ROOM,
    WAIT,
    after,
    covers,
    fit,
    resets,
    stalled,
)


def entries(*ids: str) -> list[Entry]:
    return [history_entry(event_id, 0, "x") for event_id in ids]


@pytest.mark.parametrize(
    ("read_from", "cursor", "covered"),
    [
        (None, (0, 0), True),  # not a read: the mover's own entries
        ((5, 0), (5, 0), True),  # the read began at the tab's cursor
        ((5, 0), (7, 0), True),  # ... or before it
        ((5, 0), (4, 9), False),  # the tab attached while the read ran: it would skip 4-9..5-0
        ((5, 1), (5, 0), False),
    ],
)
def test_a_read_covers_only_tabs_whose_cursor_it_began_at_or_before(read_from, cursor, covered):
    assert covers(read_from, cursor) is covered


@pytest.mark.parametrize(
    ("cursor", "trimmed", "reset"),
    [
        ((3, 0), (5, 0), True),  # the history lost 3-0..5-0 before the tab read them
        ((5, 0), (5, 0), False),  # it had the newest trimmed entry already
        ((6, 0), (5, 0), False),
        ((5, 0), (5, 1), True),
    ],
)
def test_a_tab_is_reset_only_when_the_trim_went_past_its_cursor(cursor, trimmed, reset):
    assert resets(cursor, trimmed) is reset


@pytest.mark.parametrize(
    ("offered", "cursor", "kept"),
    [
        (["1-0", "2-0", "3-0"], (0, 0), ["1-0", "2-0", "3-0"]),
        (["1-0", "2-0", "3-0"], (1, 0), ["2-0", "3-0"]),
        (["1-0", "2-0", "3-0"], (2, 5), ["3-0"]),
        (["1-0", "2-0", "3-0"], (3, 0), []),
        (["1-0", "1-1", "1-2"], (1, 1), ["1-2"]),
        ([], (0, 0), []),
    ],
)
def test_a_tab_keeps_only_the_entries_after_its_cursor(offered, cursor, kept):
    assert [entry.id for entry in after(entries(*offered), cursor)] == kept


def test_an_offer_all_after_the_cursor_is_kept_as_it_is():
    offered = entries("4-0", "5-0")
    assert after(offered, (3, 0)) is offered  # no copy on the hot path


@pytest.mark.parametrize(
    ("count", "room", "writing", "verdict"),
    [
        (1, 10, True, TAKE_ALL),
        (10, 10, False, TAKE_ALL),  # exactly fills the outbox
        (11, 10, True, TAKE_ROOM),  # the rest waits: the tab is behind
        (5, 1, False, TAKE_ROOM),
        (1, 0, True, CUT),  # a whole outbox unread while the writer is stuck on a batch
        (1, -3, True, CUT),
        (1, 0, False, WAIT),  # full before the writer first came: it takes it, then asks
        (3, -1, False, WAIT),
    ],
)
def test_a_tab_takes_what_its_outbox_has_room_for_and_is_cut_when_it_has_none(
    count, room, writing, verdict
):
    assert fit(count, room, writing) == verdict


@pytest.mark.parametrize(
    ("behind", "behind_since", "now", "cut"),
    [
        (False, 0.0, 100.0, False),  # not behind: never stalled
        (True, 0.0, STALLED_S, False),  # behind exactly STALLED_S: not yet
        (True, 0.0, STALLED_S + 0.01, True),
        (True, 50.0, 55.0, False),
    ],
)
def test_a_tab_behind_for_longer_than_stalled_s_is_cut(behind, behind_since, now, cut):
    assert stalled(behind, behind_since, now) is cut

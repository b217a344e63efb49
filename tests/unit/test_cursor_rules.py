"""The cursor rules (push/rules/cursors.py), as tables."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from push.rules.cursors import (
    RECHECK_HEARTBEATS,
    START_OF_HISTORY,
    nothing_after,
    read_again,
    read_due,
    read_start,
    readers,
    start_cursor,
    starts_caught_up,
    wake_is_old,
)


@dataclass(eq=False)
class T:
    """A tab as the rules see it."""

    cursor_key: tuple[int, int]
    behind: bool = False
    closed: bool = False


@pytest.mark.parametrize(
    ("requested", "mark", "start"),
    [
        ("7-1", "9-0", "7-1"),  # the client's own resume point wins, older or not
        ("9-5", "7-0", "9-5"),
        (None, "9-0", "9-0"),  # no cursor: after the delivered mark
        ("", "9-0", "9-0"),
        (None, None, START_OF_HISTORY),  # neither: the whole history
    ],
)
def test_a_stream_resumes_from_its_cursor_else_the_mark_else_the_start(requested, mark, start):
    assert start_cursor(requested, mark) == start


@pytest.mark.parametrize(
    ("history_caught_up", "start", "mark", "caught_up"),
    [
        (True, "9-0", None, True),
        (True, "9-0", "9-0", True),
        (True, "10-0", "9-0", True),
        (True, "8-0", "9-0", False),  # behind the mark: entries up to it were handed out
        (True, "9-0", "9-1", False),
        (False, "9-0", "9-0", False),  # the history held something after the start
    ],
)
def test_a_stream_starts_caught_up_only_at_or_past_the_mark(
    history_caught_up, start, mark, caught_up
):
    assert starts_caught_up(history_caught_up, start, mark) is caught_up


@pytest.mark.parametrize(
    ("tabs", "start", "reading"),
    [
        ([T((5, 0)), T((3, 0)), T((9, 0))], (3, 0), 3),
        ([T((5, 0)), T((3, 0), behind=True)], (5, 0), 1),  # a behind tab does not hold it back
        ([T((5, 0)), T((1, 0), closed=True)], (5, 0), 1),  # nor a closed one
        ([T((2, 7)), T((2, 3))], (2, 3), 2),
    ],
)
def test_a_read_starts_from_the_oldest_cursor_among_the_open_tabs_not_behind(tabs, start, reading):
    chosen = readers(tabs)
    assert len(chosen) == reading
    assert read_start(chosen) == start


def test_nobody_reads_when_every_tab_is_closed_or_behind():
    assert readers([T((1, 0), closed=True), T((2, 0), behind=True)]) == []


@pytest.mark.parametrize(
    ("got", "batch", "all_covered", "again"),
    [
        (3, 10, True, False),  # a short read that served everyone: done
        (10, 10, True, True),  # a full batch: there may be more
        (3, 10, False, True),  # a tab attached meanwhile: read again for it
        (0, 10, True, False),
    ],
)
def test_a_read_goes_on_while_full_or_someone_was_not_covered(got, batch, all_covered, again):
    assert read_again(got, batch, all_covered) is again


@pytest.mark.parametrize(
    ("quiet", "any_behind", "due"),
    [
        (1, False, False),
        (RECHECK_HEARTBEATS - 1, False, False),
        (RECHECK_HEARTBEATS, False, True),
        (1, True, True),  # a tab is behind: every heartbeat
    ],
)
def test_a_user_reads_every_few_heartbeats_or_every_one_while_a_tab_is_behind(
    quiet, any_behind, due
):
    assert read_due(quiet, any_behind) is due


@pytest.mark.parametrize(
    ("cursor", "others", "reading", "nothing"),
    [
        ((5, 0), [T((5, 0)), T((4, 0))], False, True),
        ((5, 0), [T((5, 1))], False, False),  # another tab got something newer
        ((5, 0), [T((5, 0))], True, False),  # a read is running: it may hand out more
        ((5, 0), [T((3, 0), behind=True)], False, False),  # a behind tab will read
        ((5, 0), [T((3, 0), closed=True)], False, False),
        ((5, 0), [], False, True),
    ],
)
def test_a_caught_up_tab_needs_no_read_when_nothing_newer_was_handed_out(
    cursor, others, reading, nothing
):
    assert nothing_after(cursor, others, reading) is nothing


@pytest.mark.parametrize(
    ("newest", "tabs", "old"),
    [
        ((5, 0), [T((5, 0)), T((6, 0))], True),  # every tab has it
        ((5, 0), [T((5, 0)), T((4, 9))], False),  # one does not
        (None, [T((5, 0))], False),  # an id this service does not read: look
        ((5, 0), [], False),  # no tab: not for us to judge
    ],
)
def test_a_wake_every_tab_already_has_asks_for_nothing(newest, tabs, old):
    assert wake_is_old(newest, tabs) is old

"""The watcher's timers (push/rules/timetable.py), as tables."""

from __future__ import annotations

import pytest

from push.rules.timetable import Timetable


class Item:
    def __init__(self, name: str) -> None:
        self.name = name
        self.look_at = 0.0
        self.queued_at: float | None = None
        self.current = True

    def __repr__(self) -> str:
        return self.name


def due(table: Timetable, now: float) -> list[str]:
    return [item.name for item in table.due(now, lambda item: item.current)]


#: (times asked for one item, in order; the clock; whether it is due, and how many
#: timers the heap holds afterwards)
ASKS = [
    ([5.0], 4.9, False, 1),
    ([5.0], 5.0, True, 0),
    # A later time replaces a sooner one: not due at the sooner one, queued again for the later.
    ([5.0, 8.0], 5.0, False, 1),
    ([5.0, 8.0], 8.0, True, 0),
    ([5.0, 5.5], 5.0, False, 1),  # not even a little early
    # A sooner time queues a timer of its own; the later one left behind is dropped.
    ([8.0, 5.0], 5.0, True, 1),
    ([8.0, 5.0], 9.0, True, 0),
    # Asked again and again for later times: still one timer.
    ([1.0, 2.0, 3.0, 4.0], 0.5, False, 1),
]


@pytest.mark.parametrize(("times", "now", "is_due", "left"), ASKS)
def test_an_item_is_due_at_the_last_time_asked_for_and_never_earlier(times, now, is_due, left):
    table: Timetable[Item] = Timetable()
    item = Item("a")
    for when in times:
        table.at(item, when)
    assert due(table, now) == (["a"] if is_due else [])
    assert len(table) == left


def test_an_item_is_due_once_per_time_asked_for():
    table: Timetable[Item] = Timetable()
    item = Item("a")
    table.at(item, 1.0)
    assert due(table, 1.0) == ["a"]
    assert due(table, 2.0) == []
    table.at(item, 3.0)
    assert due(table, 3.0) == ["a"]


def test_items_are_due_in_time_order_and_gone_ones_are_dropped():
    table: Timetable[Item] = Timetable()
    a, b, c = Item("a"), Item("b"), Item("c")
    table.at(c, 3.0)
    table.at(a, 1.0)
    table.at(b, 2.0)
    b.current = False  # stopped, or moved to another node
    assert due(table, 5.0) == ["a", "c"]
    assert len(table) == 0


@pytest.mark.parametrize(
    ("times", "now", "longest", "wait"),
    [
        ([], 0.0, 4.0, 4.0),  # nothing queued: the heal interval
        ([2.5], 1.0, 4.0, 1.5),
        ([9.0], 1.0, 4.0, 4.0),  # never longer than the heal interval
        ([0.5], 1.0, 4.0, 0.0),  # overdue: at once
        ([3.0, 2.0], 1.0, 4.0, 1.0),  # the soonest
    ],
)
def test_the_loop_waits_for_the_next_timer_at_most_the_heal_interval(times, now, longest, wait):
    table: Timetable[Item] = Timetable()
    for index, when in enumerate(times):
        table.at(Item(str(index)), when)
    assert table.wait_s(now, longest) == pytest.approx(wait)


def test_an_item_that_moves_to_another_timetable_is_timed_there():
    old: Timetable[Item] = Timetable()
    new: Timetable[Item] = Timetable()
    item = Item("a")
    old.at(item, 1.0)
    old.drop(item)  # the user moved to another node
    new.at(item, 5.0)
    item.current = False  # as the old node sees it now
    assert due(old, 1.0) == []
    item.current = True
    assert len(new) == 1
    assert due(new, 5.0) == ["a"]

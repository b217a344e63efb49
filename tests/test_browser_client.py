"""push.js in headless Chromium: one connection for all tabs, cursors across reloads, receipts."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from clients import drainer_pids, metric_sum, open_sse, wait_until
from conftest import API_KEYS
from playwright.sync_api import expect
from servers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def api(base_url, path):
    request = urllib.request.Request(
        base_url + path, headers={"Authorization": f"Bearer {API_KEYS[0]}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def connections(base_url, user_id):
    return api(base_url, f"/api/users/{user_id}/presence")["connections"]


def open_streams(base_url):
    """push_open_connections summed over transports and workers, from /metrics."""
    return metric_sum(base_url, "push_open_connections")


def role(page):
    return page.locator("#role").get_attribute("data-role")


def shown(page):
    """The payloads a page shows, oldest first."""
    return list(reversed(page.locator("#messages li.message .data").all_inner_texts()))


@pytest.fixture
def context(browser):
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


def open_tab(context, base_url, user_id, transport="sse"):
    page = context.new_page()
    page.goto(f"{base_url}/?user_id={user_id}&transport={transport}")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    return page


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_three_tabs_share_one_connection_and_show_every_message_once(
    context, base_url, r, user_id, transport
):
    wait_until(lambda: open_streams(base_url) == 0, what="earlier tests' streams to close")
    tabs = [open_tab(context, base_url, user_id, transport) for _ in range(3)]
    roles = sorted(role(tab) for tab in tabs)
    assert roles == ["follower", "follower", "leader"]
    wait_until(lambda: connections(base_url, user_id) == 1, what="exactly one connection")
    assert open_streams(base_url) == 1  # the server's own count agrees
    r.lpush(f"user_{user_id}_messages", *[f"m{i}" for i in range(5)])
    for tab in tabs:
        expect(tab.locator("#messages li.message")).to_have_count(5)
        assert shown(tab) == [f"m{i}" for i in range(5)]
    assert connections(base_url, user_id) == 1


def test_when_the_leader_tab_closes_another_takes_over_and_nothing_is_lost(
    context, base_url, r, user_id
):
    tabs = [open_tab(context, base_url, user_id, "ws") for _ in range(3)]
    leader = next(tab for tab in tabs if role(tab) == "leader")
    r.lpush(f"user_{user_id}_messages", "before")
    for tab in tabs:
        expect(tab.locator("#messages li.message")).to_have_count(1)
    leader.close()
    r.lpush(f"user_{user_id}_messages", "during 1", "during 2")  # while the lock passes
    rest = [tab for tab in tabs if tab is not leader]
    for tab in rest:
        expect(tab.locator("#messages li.message")).to_have_count(3)
        assert shown(tab) == ["before", "during 1", "during 2"]
    assert sorted(role(tab) for tab in rest) == ["follower", "leader"]
    wait_until(lambda: connections(base_url, user_id) == 1, what="one connection again")


def test_a_reloaded_tab_resumes_from_its_stored_cursor(context, base_url, r, user_id):
    tab = open_tab(context, base_url, user_id)
    r.lpush(f"user_{user_id}_messages", "first")
    expect(tab.locator("#messages li.message")).to_have_count(1)
    tab.goto("about:blank")  # the tab navigates away: its connection ends
    wait_until(lambda: connections(base_url, user_id) == 0)
    # Another client of the user reads "second": the delivered mark moves past it.
    with open_sse(base_url, {"user_id": user_id}) as other:
        other.wait_for_comment("connected")
        r.lpush(f"user_{user_id}_messages", "second")
        assert other.next_event().data == "second"
    tab.goto(f"{base_url}/?user_id={user_id}&transport=sse")
    # A client without a cursor would start after the mark; this tab resumes after "first".
    expect(tab.locator("#messages li.message")).to_have_count(1)
    assert shown(tab) == ["second"]


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_receipts_advance_when_the_page_shows_a_message(context, base_url, r, user_id, transport):
    before = api(base_url, f"/api/users/{user_id}/receipts")
    assert before == {"waiting": 0, "delivered": None, "acknowledged": None, "unacknowledged": 0}
    tab = open_tab(context, base_url, user_id, transport)
    r.lpush(f"user_{user_id}_messages", "please read")
    expect(tab.locator("#messages li.message")).to_have_count(1)
    shown_id = tab.locator("#messages li.message").first.get_attribute("data-id")
    receipts = wait_until(
        lambda: (a := api(base_url, f"/api/users/{user_id}/receipts"))["acknowledged"] and a,
        what="the acknowledgement",
    )
    assert receipts["acknowledged"]["id"] == shown_id
    assert receipts["delivered"]["id"] == shown_id
    assert (receipts["waiting"], receipts["unacknowledged"]) == (0, 0)
    tab.close()
    wait_until(
        lambda: connections(base_url, user_id) == 0 and not drainer_pids(r, user_id),
        what="the tab and its drainer to leave",
    )
    r.lpush(f"user_{user_id}_messages", "unread while away")
    away = wait_until(
        lambda: (a := api(base_url, f"/api/users/{user_id}/receipts"))["waiting"] and a,
        what="the message to wait in the mailbox",
    )
    assert away["waiting"] == 1
    assert away["delivered"]["id"] == away["acknowledged"]["id"] == shown_id
    assert away["unacknowledged"] == 0


def test_auto_falls_back_to_sse_when_the_websocket_upgrade_is_refused(
    context, base_url, r, user_id
):
    page = context.new_page()
    page.route_web_socket("**/ws**", lambda ws: ws.close())  # a proxy that breaks upgrades
    page.goto(f"{base_url}/?user_id={user_id}&transport=auto")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    assert page.evaluate("window.push.usedTransport") == "sse"
    r.lpush(f"user_{user_id}_messages", "over sse")
    expect(page.locator("#messages li.message .data")).to_have_text(["over sse"])


def test_the_escalation_example_names_users_with_unread_messages(base_url, r, user_id):
    """examples/escalate.py, as the README's recipe runs it."""
    offline = f"{user_id}-offline"
    r.lpush(f"user_{offline}_messages", "you have a reply")
    with open_sse(base_url, {"user_id": user_id}) as stream:  # read, but never acknowledged
        stream.wait_for_comment("connected")
        r.lpush(f"user_{user_id}_messages", "seen by no one")
        assert stream.next_event().data == "seen by no one"
    result = subprocess.run(
        [
            sys.executable,
            "examples/escalate.py",
            "--after",
            "0",
            "--url",
            base_url,
            "--key",
            API_KEYS[0],
            offline,
            user_id,
            "nobody-at-all",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{offline}\t1 message(s) waiting; nothing delivered for over 0s",
        f"{user_id}\t1 message(s) not acknowledged for over 0s",
    ]

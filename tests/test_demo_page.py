"""The demo page in headless Chromium, against the real service under gunicorn."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

EVENT_ID = re.compile(r"^\d+-\d+$")


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_the_page_receives_what_a_producer_pushes(
    page, base_url, r, user_id, transport, output_dir
):
    page.goto(f"{base_url}/?user_id={user_id}&transport={transport}")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator(f"input[name=transport][value={transport}]")).to_be_checked()
    r.lpush(f"user_{user_id}_messages", f"hello over {transport}", "second ✓")
    items = page.locator("#messages li")
    expect(items).to_have_count(2)
    # Newest first on the page.
    expect(items.nth(0).locator(".data")).to_have_text("second ✓")
    expect(items.nth(1).locator(".data")).to_have_text(f"hello over {transport}")
    first_id = items.nth(1).get_attribute("data-id")
    assert EVENT_ID.match(first_id)
    expect(items.nth(1).locator(".id")).to_have_text(first_id)
    page.screenshot(path=output_dir / f"demo-{transport}.png", full_page=True)


def test_the_send_box_delivers_through_the_mailbox(page, base_url, r, user_id, output_dir):
    page.goto(f"{base_url}/?user_id={user_id}&transport=ws")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")
    expect(page.locator("#send-user-id")).to_have_value(user_id)
    page.fill("#send-data", "typed in the send box")
    page.click("#send")
    expect(page.locator("#messages li .data")).to_have_text(["typed in the send box"])
    expect(page.locator("#send-result")).to_have_text("queued")
    page.screenshot(path=output_dir / "demo-send.png", full_page=True)


def test_without_parameters_the_page_waits_with_a_random_user(page, base_url):
    page.goto(base_url + "/")
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")
    assert re.fullmatch(r"demo-[a-z0-9]+", page.input_value("#user-id"))
    page.click("#connect")
    expect(page.locator("#status")).to_have_attribute("data-state", "open")

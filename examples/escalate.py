"""Escalate unread messages: who should get an email (or a mobile push) instead?

Asks push's receipts API about each user and names those who have had messages
waiting in the mailbox (never delivered: the user is offline) or delivered but not
acknowledged (delivered to a tab that never showed them) for longer than --after
seconds. Standard library only; run it from cron or a worker:

    PUSH_URL=http://127.0.0.1:8000 PUSH_API_KEY=... python examples/escalate.py --after 300 42 43
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from datetime import datetime


def receipts(base_url: str, api_key: str, user_id: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/api/users/{user_id}/receipts",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def seconds_since(mark: dict | None, now: float) -> float | None:
    if mark is None:
        return None
    return now - datetime.fromisoformat(mark["at"]).timestamp()


def reason_to_escalate(answer: dict, after_s: float, now: float) -> str | None:
    """Why this user should be reached another way, or None."""
    delivered_ago = seconds_since(answer["delivered"], now)
    if answer["waiting"] and (delivered_ago is None or delivered_ago > after_s):
        return f"{answer['waiting']} message(s) waiting; nothing delivered for over {after_s:g}s"
    acknowledged_ago = seconds_since(answer["acknowledged"], now)
    if answer["unacknowledged"] and (acknowledged_ago is None or acknowledged_ago > after_s):
        return f"{answer['unacknowledged']} message(s) not acknowledged for over {after_s:g}s"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("user_ids", nargs="+")
    parser.add_argument("--after", type=float, default=300, help="seconds (default 300)")
    parser.add_argument("--url", default=os.environ.get("PUSH_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("PUSH_API_KEY"))
    args = parser.parse_args()
    if not args.key:
        parser.error("pass --key or set PUSH_API_KEY")
    now = time.time()
    for user_id in args.user_ids:
        reason = reason_to_escalate(receipts(args.url, args.key, user_id), args.after, now)
        if reason:
            print(f"{user_id}\t{reason}")  # here: send the email / mobile push
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a message on a user's wake channel says (push/rules/wakes.py)."""

from __future__ import annotations

import pytest

from push.rules.wakes import DRAINED, FREE, REVOKED, revoked_reason, wake_kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"free", FREE),
        (b"free ", DRAINED),  # only the exact word
        (b"revoked policy", REVOKED),
        (b"revoked ", REVOKED),
        (b"revoked", DRAINED),
        (b"1732630000000-3", DRAINED),
        (b'1732630000000-3 ["1732630000000-2", [["1732630000000-3", 7, "hi"]]]', DRAINED),
    ],
)
def test_a_wake_is_told_apart_by_its_first_bytes(data, kind):
    assert wake_kind(data) == kind


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"revoked policy", "policy"),
        (b"revoked ", ""),
        (b"revoked a b", "a b"),
        (b"revoked \xff", "\ufffd"),
    ],
)
def test_a_revocation_carries_its_reason(data, reason):
    assert revoked_reason(data) == reason

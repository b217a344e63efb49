"""The close codes and reasons of GET /ws, and which one a closed tab earns."""

from __future__ import annotations

from push.delivery.tab import OUTBOX_FULL, REVOKED, SERVICE_RESTART, TOKEN_EXPIRED, Tab

#: Close codes. 1008: the client did not answer a ping in time; 1011: the server failed;
#: 1012: the service restarts (come back). The 4xxx codes echo the HTTP status of the same
#: complaint: 4400 a frame we do not understand, 4401 the token expired or a renewal's
#: token failed a check (the reason names it), 4403 the user was disconnected or a
#: renewal named another user, 4408 a client that read too slowly (it resumes by id),
#: 4413 a frame too large, 4415 a binary frame.
CLOSE_PING_TIMEOUT = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_LARGE = 4413
CLOSE_BINARY = 4415


def close_reason(reason: str, detail: str) -> str:
    """A close frame's reason holds at most 123 bytes."""
    text = f"{reason}: {detail}" if detail else reason
    return text.encode()[:123].decode(errors="ignore")


def close_for(tab: Tab) -> tuple[int, str] | None:
    """The close code and reason of a tab closed by the service (None: the client left,
    or nothing the client is told about)."""
    if tab.closed_reason == SERVICE_RESTART:
        return CLOSE_SERVICE_RESTART, SERVICE_RESTART
    if tab.closed_reason == TOKEN_EXPIRED:
        return CLOSE_UNAUTHORIZED, TOKEN_EXPIRED
    if tab.closed_reason == REVOKED:
        return CLOSE_FORBIDDEN, close_reason(REVOKED, tab.close_detail)
    if tab.closed_reason == OUTBOX_FULL:
        return CLOSE_TOO_SLOW, OUTBOX_FULL
    return None

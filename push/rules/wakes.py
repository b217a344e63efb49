"""What a message on a user's wake channel says.

Three kinds, told apart by their first bytes:

- `free`: a drainer gave the user's lease back (lua/mover_lease.lua): a waiting drainer
  asks for it at once, and the user reads (FREE).
- `revoked <reason>`: the user was disconnected (lua/revoke.lua): every local tab closes,
  saying why (REVOKED).
- anything else is a drain's wake (lua/drain.lua): the newest id it added, and maybe the
  entries themselves (DRAINED; push/model/entries.py reads it).
"""

from __future__ import annotations

FREE = "free"
REVOKED = "revoked"
DRAINED = "drained"

#: What a drainer's release publishes on the user's wake channel (lua/mover_lease.lua).
LEASE_FREE = "free"
LEASE_FREE_BYTES = LEASE_FREE.encode()
#: What lua/revoke.lua publishes on the user's wake channel, before the reason.
REVOKED_PREFIX = b"revoked "


def wake_kind(data: bytes) -> str:
    """FREE, REVOKED or DRAINED."""
    if data == LEASE_FREE_BYTES:
        return FREE
    if data.startswith(REVOKED_PREFIX):
        return REVOKED
    return DRAINED


def revoked_reason(data: bytes) -> str:
    """The reason a REVOKED wake gives."""
    return data[len(REVOKED_PREFIX) :].decode(errors="replace")

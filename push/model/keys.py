"""Names: user ids, the Redis keys of a user, and event ids.

Every key of a user carries the mailbox name as a hash tag
(`{user_42_messages}:history`), so on Redis Cluster all of them sit in the
mailbox's own slot and one Lua script can touch them together. The mailbox
itself is the producers' contract and has no braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
EVENT_ID_PATTERN = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
#: The largest value of either part of an event id: Redis stream ids are two unsigned
#: 64-bit numbers, and Redis refuses an id past them in every command.
MAX_EVENT_ID_PART = 2**64 - 1


class InvalidUserId(ValueError):
    """A user id outside 1-64 characters of [A-Za-z0-9_.:-]."""


class InvalidEventId(ValueError):
    """A cursor that is not an event id this service hands out (`<ms>-<seq>`)."""


#: Ids that are path segments with a meaning of their own in URLs (/api/users/<id>/...).
_DOT_SEGMENTS = {".", ".."}


def validate_user_id(user_id: object) -> str:
    """Return `user_id` if it may be spliced into a key name, else raise InvalidUserId."""
    if (
        not isinstance(user_id, str)
        or not USER_ID_PATTERN.fullmatch(user_id)
        or user_id in _DOT_SEGMENTS
    ):
        raise InvalidUserId('a user id is 1-64 characters of A-Z a-z 0-9 _ . : - (not "." or "..")')
    return user_id


def parse_event_id(event_id: str) -> tuple[int, int]:
    """`"1732630000000-3"` -> `(1732630000000, 3)`, comparable in delivery order."""
    match = EVENT_ID_PATTERN.fullmatch(event_id)
    if match is None:
        raise InvalidEventId("an event id looks like 1732630000000-0")
    ms, sequence = int(match.group(1)), int(match.group(2))
    if ms > MAX_EVENT_ID_PART or sequence > MAX_EVENT_ID_PART:
        raise InvalidEventId(f"each part of an event id is at most {MAX_EVENT_ID_PART}")
    return ms, sequence


def event_id_text(key: tuple[int, int]) -> str:
    """The id of a parsed key as Redis writes it (`"007-0"` was parsed as `(7, 0)`)."""
    return f"{key[0]}-{key[1]}"


def history_key(event_id: str) -> tuple[int, int]:
    """parse_event_id for an id Redis gave the history (no need to check it): the
    delivery path parses one per entry."""
    ms, _, sequence = event_id.partition("-")
    return int(ms), int(sequence)


def _tagged(suffix: str) -> property:
    """A key of the user: `{<mailbox>}:<suffix>`, in the mailbox's hash slot."""
    return property(lambda keys: f"{{{keys.mailbox}}}:{suffix}", doc=f"`{{mailbox}}:{suffix}`")


@dataclass(frozen=True, slots=True)
class UserKeys:
    """The Redis keys and the wake channel of one user.

    Only the mailbox is kept; the others are made from it when asked for (one per online
    user: seven strings less each)."""

    mailbox: str

    pending = _tagged("pending")
    history = _tagged("history")
    state = _tagged("state")
    dead = _tagged("dead")
    wake = _tagged("wake")
    presence = _tagged("presence")
    mover = _tagged("mover")
    #: When the user was last revoked (ms): tokens issued before are refused.
    revoked = _tagged("revoked")
    #: When the mailbox was last written, its length and newest message then (sweep.lua).
    swept = _tagged("swept")

    @property
    def drain_keys(self) -> list[str]:
        """The keys the drain script touches, in the order it expects them."""
        return [
            self.mailbox,
            self.pending,
            self.history,
            self.state,
            self.dead,
            self.mover,
            self.presence,
            self.swept,
        ]


def user_keys(user_id: str, mailbox_template: str) -> UserKeys:
    """The keys of `user_id` for a mailbox template such as `user_{user_id}_messages`."""
    return UserKeys(mailbox_template.replace("{user_id}", validate_user_id(user_id)))


def worker_alive_key(worker_id: str) -> str:
    """Exists while the worker runs (renewed every few seconds)."""
    return f"push:alive:{worker_id}"

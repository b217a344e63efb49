"""What the watcher does when Redis answers a user's drain with an error.

The rules, in words, by the error's first word:

- NOSCRIPT: the server forgot the scripts (a restart, a promoted replica): load them
  again, and drain the user in the next turn (RELOAD_SCRIPTS).
- READONLY: the server turned into a replica (a Sentinel failover): the connection is
  opened again, to the primary, and the user drained in the next turn (RECONNECT).
- MOVED, ASK: the user's slot is on another node now: drain again soon, on the node that
  owns it (PLACE_AGAIN).
- TRYAGAIN, CLUSTERDOWN, LOADING, BUSY, MASTERDOWN: a passing condition (a slot migrating,
  Redis loading its data, a busy script): drain again in RETRY_SOON_S (SOON).
- Anything else is the user's own (a mailbox that is not a list): counted, logged, and
  tried again in RETRY_LATER_S (LATER).
"""

from __future__ import annotations

RELOAD_SCRIPTS = "reload scripts"
RECONNECT = "reconnect"
PLACE_AGAIN = "place again"
SOON = "soon"
LATER = "later"

#: A drain that met a passing condition is tried again this soon.
RETRY_SOON_S = 0.2
#: ... and one that failed for a reason of the user's own, this much later.
RETRY_LATER_S = 5.0
#: Error replies after which the user is simply drained again soon.
PASSING = frozenset({"TRYAGAIN", "CLUSTERDOWN", "LOADING", "BUSY", "MASTERDOWN"})
#: Error replies that mean the user's slot is served by another node.
ELSEWHERE = frozenset({"MOVED", "ASK"})
#: Error replies that mean the server forgot our scripts.
NO_SCRIPT = "NOSCRIPT"


def kind(reply: str) -> str:
    """An error reply's first word (`MOVED 3999 127.0.0.1:6381` -> `MOVED`)."""
    return reply.split(" ", 1)[0]


def after_error(reply: str) -> str:
    """What to do after a drain answered with the error `reply`."""
    word = kind(reply)
    if word == NO_SCRIPT:
        return RELOAD_SCRIPTS
    if word == "READONLY":
        return RECONNECT
    if word in ELSEWHERE:
        return PLACE_AGAIN
    if word in PASSING:
        return SOON
    return LATER

"""One worker's delivery: from a user's mailbox to that user's open tabs.

- `switchboard.py`: the worker's registry of local users. "Switchboard", not "hub": gevent
  already has a hub in every worker. `local_user.py`: one user's local tabs, its drainer
  and the pump that reads the history for them. `wake_listener.py`: the worker's one wake
  subscriber. `upkeep.py`: liveness and presence, the worker's standing chores.
- `watcher.py` (with `node_watch.py`, `node_work.py`, `watched_mailbox.py`) / `mover.py`
  (through `drainers.py`): what moves mail into the history.
- `tab.py`: one open tab (SSE or WebSocket): a cursor and a bounded outbox. "Tab", not
  "connection": a connection here is always a Redis one.
- `marks.py`, `retention.py`, `tally.py`, `backoff.py`: the worker's background chores.

The decisions these make are in push/rules/; the Redis calls in push/storage/."""

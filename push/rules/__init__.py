"""Delivery's decisions as plain code: no gevent, no Redis, no clock of their own.

Each rule takes the facts (ids, counts, times passed in) and answers what to do; the
greenlets in push/delivery/ ask and act. tests/unit/ checks every rule by tables, without
a Redis server. "rules" rather than "policy" or "state": they decide, they hold nothing
that lives longer than the call or the small object they are."""

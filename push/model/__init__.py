"""The plain values every layer shares: names and keys, entries, settings, refusals.

No I/O here, and no import of another push folder: this is the ground floor. "model"
because these are the things push talks about (a user's keys, an entry of the history, a
drain's result), not how they travel."""

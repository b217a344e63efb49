"""Who is asking: signed tokens, single-use tickets, and the site's own login (PUSH_AUTH_URL).

Used by the HTTP edge before anything is streamed or accepted; knows nothing of delivery,
nor of Flask: each check takes its inputs as arguments (a token and the token settings,
a ticket and a Redis client, a session's headers). Reading them from a request is the
edge's part (push/edge/who.py)."""

"""Who is asking: signed tokens, single-use tickets, and the site's own login (PUSH_AUTH_URL).

Used by the HTTP edge before anything is streamed or accepted; knows nothing of delivery."""

"""Every default, each with its reason, and the fixed bounds the settings are held to.

Read by the parsers (push/model/settings/environment.py) and by the code that works
without an app (push/publishing.py, a producer's process)."""

from __future__ import annotations

#: Where the mailboxes live. Unset in development means "start a private Redis" (app.py).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The producers' contract: LPUSH to this key. `{user_id}` is replaced by the user id.
DEFAULT_MAILBOX_KEY = "user_{user_id}_messages"
#: Proxies and load balancers commonly cut idle connections after 30-60 s; 15 s stays under.
DEFAULT_HEARTBEAT_S = 15.0
#: Entries kept per user for resume; about 1000 short messages cost ~100 KB in Redis.
DEFAULT_HISTORY_MAX = 1000
#: A week: a user who comes back after a weekend can still resume.
DEFAULT_HISTORY_TTL_S = 7 * 24 * 3600
#: Larger payloads are a producer bug; they go to the dead-letter list, not to browsers.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
#: Messages one mailbox holds before the oldest go: a user offline for weeks under a
#: chatty producer keeps a long backlog (~1 MB of short messages), not an unbounded one.
DEFAULT_MAILBOX_MAX = 10_000
#: A mailbox nobody wrote to for 30 days is dropped: longer than any absence whose
#: backlog is still worth showing, and as long as a revocation is remembered.
DEFAULT_MAILBOX_TTL_S = 30 * 24 * 3600
#: How often one worker of the fleet sweeps a share of the mailboxes (cap and TTL for raw
#: LPUSH producers): an offline user's mailbox is held to them within a few sweeps.
DEFAULT_MAILBOX_SWEEP_S = 60.0
#: Redis's own expiry on a mailbox comes this long after its TTL: the sweep (which counts
#: and logs) drops a mailbox at its TTL; Redis only catches one no service swept for a day.
MAILBOX_EXPIRY_MARGIN_S = 86400
#: A dead letter is for a person to look at what a producer got wrong: a week is enough.
DEFAULT_DEAD_LETTER_TTL_S = 7 * 24 * 3600
#: Bytes of a dead letter kept (a longer one is cut, its length noted): enough to see what
#: a producer sent; with the last 1000 kept, a user's dead letters stay under ~4 MB.
DEAD_LETTER_MAX_BYTES = 4096
#: Dead letters kept per user (the newest).
DEAD_LETTER_MAX_COUNT = 1000
#: Bytes of idempotency records kept per API key before the oldest go: a retry comes
#: within minutes, and 64 MiB holds hours of them even at dozens of keyed publishes a
#: second (a one-user record is ~400 bytes), while bounding each key's share of Redis.
DEFAULT_IDEMPOTENCY_MAX_BYTES = 64 * 1024 * 1024
#: Events queued for one slow connection before it is cut (it resumes by event id).
DEFAULT_OUTBOX_MAX = 1000
#: What EventSource waits before reconnecting (ms); a little jitter is added per answer.
DEFAULT_RETRY_MS = 2000
#: WebSocket ping interval; also how fast a silently dropped WebSocket is noticed.
DEFAULT_WS_PING_S = 25.0
#: How long a mover blocks on BLMOVE before it looks again (stopping does not wait for it).
DEFAULT_BLOCK_S = 20.0
#: Connections for short commands, per worker (a command holds one for a round trip);
#: blocked movers use their own. Small, so Redis holds ~ online users + 10 per worker.
DEFAULT_REDIS_POOL_SIZE = 8
#: Messages moved per Lua call: batching is what makes the mover fast.
DEFAULT_DRAIN_BATCH = 200
#: How a worker learns that a mailbox received mail. auto: the per-worker mailbox watcher
#: (a few Redis connections per worker, whatever the number of users) where Redis can
#: track keys (Redis >= 6), else a blocked connection per online user.
DEFAULT_MAILBOX_WATCH = "auto"
MAILBOX_WATCH_MODES = ("auto", "notify", "block")
#: HMAC algorithms only: every one is keyed by PUSH_JWT_SECRET, so no HS/RS confusion.
DEFAULT_JWT_ALGORITHMS = ("HS256",)
ALLOWED_JWT_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
#: HS256 keys shorter than the hash are guessable offline (RFC 7518 section 3.2).
MIN_JWT_SECRET_BYTES = 32
#: API keys are bearer secrets: long enough not to be guessed online.
MIN_API_KEY_CHARS = 16
#: Clock skew tolerated between the token's issuer and this service.
DEFAULT_JWT_LEEWAY_S = 5
#: This service's name in a token's `aud` while PUSH_JWT_AUDIENCE is unset: a token minted
#: for another service (another `aud`) never opens a stream here.
IMPLICIT_JWT_AUDIENCE = "push"
#: The longest life a token may be minted with. A day: a token minted at sign-in lasts a
#: working day, pages fetch fresh ones anyway (push.js getToken, in-band refresh), and a
#: stolen token is worth a day at most, not the years its issuer may have written.
DEFAULT_JWT_MAX_AGE_S = 24 * 3600
#: How far an issuer's clock may run ahead of ours before a token minted for exactly
#: PUSH_JWT_MAX_AGE_S counts as longer: hosts kept by NTP are within seconds, a laptop or
#: a container without it within minutes.
JWT_MAX_AGE_CLOCK_SKEW_S = 300
#: Where a page keeps its token for EventSource, which cannot set headers (HttpOnly).
DEFAULT_TOKEN_COOKIE = "push_token"
#: A ticket only has to survive the page's next request.
DEFAULT_TICKET_TTL_S = 30
#: Seconds the site's answer for one session is reused: a reconnect storm after a deploy
#: asks the site once per session, and a logout is seen by the next reconnect within this.
DEFAULT_AUTH_CACHE_S = 30.0
#: Seconds the service waits for the site's auth hook: a slow site is treated as down.
DEFAULT_AUTH_TIMEOUT_S = 1.0
#: Twenty tabs of one user is generous; more is a bug or an abuse.
DEFAULT_MAX_CONNECTIONS_PER_USER = 20
#: How long a user's revocation refuses the tokens issued before it. It must outlast the
#: longest `exp` a site mints (PUSH_JWT_MAX_AGE_S bounds only the life a token has left, so
#: a token minted for 60 days passes that check in its last day), or such a token works
#: again once the revocation is forgotten; 30 days is longer than sites let a session live.
DEFAULT_REVOCATION_TTL_S = 30 * 24 * 3600
#: Publish API calls per second per API key; 0 turns the limit off.
DEFAULT_API_RATE = 0
#: Seconds over which clients are told to come back after a restart, so they do not all
#: reconnect in the same second.
DEFAULT_RECONNECT_SPREAD_S = 5.0
#: A connection's presence lease; renewed every third of it, so a dead worker's
#: connections stop counting within this many seconds.
DEFAULT_PRESENCE_LEASE_S = 60

#: Seconds a request body may take to arrive. The largest body taken (a publish of about
#: 6 x PUSH_MAX_MESSAGE_BYTES, 480 KB by default) crosses a 1 Mbit/s link in 4 s; a body
#: trickled slower than that holds a connection for no one's benefit.
DEFAULT_BODY_TIMEOUT_S = 10.0


def mailbox_expiry_ms(ttl_s: int) -> int:
    """The Redis expiry our writers give a mailbox: its TTL plus MAILBOX_EXPIRY_MARGIN_S.
    The sweep drops, counts and logs a mailbox once its TTL has passed since its last write
    (kept in its marker, whatever TTL the writer had); Redis's own expiry, the margin later,
    only catches one no service swept."""
    return (ttl_s + MAILBOX_EXPIRY_MARGIN_S) * 1000

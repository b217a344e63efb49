// push.js: the browser side of push, as a plain ES module (no build step).
//
//   import { connect } from "/static/push.js";
//   const push = connect({ url: "https://push.example.com", transport: "auto", getToken });
//   push.on("message", ({ id, data }) => show(data));
//   push.on("reset", ({ id }) => reloadState());
//   push.on("status", ({ state, role }) => badge(state, role));  // "unauthorized": log in again
//   push.close();
//
// One connection per browser per user: the tabs elect a leader with the Web Locks API;
// the leader holds the EventSource or WebSocket and relays every event to the other tabs
// over a BroadcastChannel. When the leader tab closes, the lock passes to another tab,
// which resumes from the cursor (the last event id) kept in localStorage. Without those
// APIs every tab connects on its own. Events are de-duplicated by id across reconnects and
// tabs, and the leader acknowledges what was shown, so the backend can ask for receipts.
//
// The cursor is kept per user: under the `sub` of the page's token, else under the user
// the service said it streams for (its hello, asked for with `hello=1`). A page that does
// not know its user yet (one that relies on the cookie, on load) connects without a
// cursor; when the hello names a user with a stored cursor, it reopens with that cursor
// before showing anything. So a reload resumes where this browser was, and on a shared
// browser nobody resumes from somebody else's id.
//
// Tokens never go in a URL: a stream (SSE or WebSocket) opens with a single-use ticket
// bought with `POST /ticket` (Authorization: Bearer), and SSE acks carry the token in the
// Authorization header. Pages without a token rely on the cookie (or, in demo mode, on
// `params.user_id`). `getToken` (an async function returning a fresh JWT) is called before
// each connection and ahead of the current token's exp; a WebSocket takes the new token in
// band (`{"token": ...}`), an SSE stream reconnects with it. A static `token` works until it
// expires. When a WebSocket handshake fails, the same URL is asked over fetch (the browser
// hides a failed upgrade's status): 401/403 get a new token, 429/503 back off and try
// WebSocket again, and only a 426 (the service would have accepted it: something between
// broke the upgrade) makes `transport: "auto"` use SSE. Credentials refused three times in a
// row (or a static token that expired) stop the retries with status `unauthorized`; a page
// with cookies only reopens when its stream ends (the site's session may still be good).

/** Compare two event ids ("<ms>-<seq>"): negative, zero or positive. */
export function compareIds(a, b) {
  const [am, as] = a.split("-").map(BigInt);
  const [bm, bs] = b.split("-").map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

/** Capped exponential backoff with jitter; a restarting (1012) or busy (1013) server
 *  gets a longer first wait. `random` is injectable for tests. */
export function backoffMs(attempt, closeCode = 0, random = Math.random) {
  const base = closeCode === 1012 || closeCode === 1013 ? 1000 : 250;
  const capped = Math.min(15000, base * 2 ** Math.min(attempt, 10));
  return Math.round(capped * (0.5 + random()));
}

/** A JWT's claims, from its payload (not verified: the service does that); null if unreadable. */
function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** When a JWT expires (ms since the epoch), from its payload; null if it cannot be read. */
export function tokenExpiry(token) {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === "number" ? exp * 1000 : null;
}

/** Whom a JWT names (its `sub`), from its payload; null if it cannot be read. The service
 *  streams for that user or refuses the token, so the page may file its cursor under it. */
export function tokenSubject(token) {
  const sub = tokenClaims(token)?.sub;
  return typeof sub === "string" && sub ? sub : null;
}

/** Where a user's cursor is kept: per tab group (the `user` option) and per confirmed user. */
export function cursorKey(group, user) {
  return `push:cursor:${group}:${user}`;
}

/** Query parameters that hold a credential: never put in a URL by this client. */
const SECRET_PARAMETERS = ["token", "ticket"];

/** How long before a token's expiry to renew it: a fifth of its life, 1-60 s. */
export function renewalLeadMs(expiresAtMs, nowMs) {
  return Math.max(1000, Math.min(60000, (expiresAtMs - nowMs) / 5));
}

/** Refused credentials in a row after which the client stops and says `unauthorized`. */
export const MAX_AUTH_FAILURES = 3;

/** The stream URL for a transport, with the identity parameters and the cursor. */
export function streamUrl(base, transport, params, cursor) {
  const url = new URL(transport === "ws" ? "/ws" : "/stream", base);
  if (transport === "ws") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, value);
  }
  if (cursor) url.searchParams.set("last_event_id", cursor);
  return url.toString();
}

/** Keeps the newest event id, and says whether an id is new (after it). Without a key
 *  (the user is not known yet) it keeps nothing. */
export class Cursor {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
  }
  get value() {
    if (!this.key) return null;
    try { return this.storage?.getItem(this.key) || null; } catch { return null; }
  }
  isNew(id) {
    const current = this.value;
    return !current || compareIds(id, current) > 0;
  }
  advance(id) {
    if (!this.isNew(id)) return false;
    if (!this.key) return true;
    try { this.storage?.setItem(this.key, id); } catch { /* private mode: memory only */ }
    return true;
  }
}

class MemoryStorage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
}

export function connect(options = {}) {
  return new Push(options);
}

class Unauthorized extends Error {}

class Push {
  constructor({ url, transport = "auto", token, getToken, ticketUrl, params = {}, user = "default" } = {}) {
    this.base = url || globalThis.location?.origin;
    this.transport = transport;
    // A token passed among the params is still a token: it goes in a header, not the URL.
    this.token = token || params.token;
    this.getToken = getToken;
    this.authFailures = 0;
    this.ticketUrl = ticketUrl;
    this.params = Object.fromEntries(
      Object.entries(params).filter(([name]) => !SECRET_PARAMETERS.includes(name)),
    );
    this.listeners = { message: [], reset: [], status: [] };
    this.closed = false;
    this.role = "starting";
    this.state = "connecting";
    this.attempt = 0;
    this.storage = globalThis.localStorage || new MemoryStorage();
    // `user` names the tab group (and the cursors' namespace), not whose cursor to use.
    this.group = user;
    this.sub = null; // the user whose cursor is in use: unknown until a token or the hello says
    this.confirmedToken = undefined; // the token that was in use when the service named this.sub
    this.cursor = new Cursor(this.storage, null);
    this.lastShown = null; // in memory too, for storages that refuse writes
    const shared = globalThis.navigator?.locks && globalThis.BroadcastChannel;
    if (shared) {
      this.join();
    } else {
      this.setRole("alone");
      this.open();
    }
  }

  // Join the tabs of this user in this browser: named after the token's user when the page
  // has a token, so that two people's pages open at once never share one connection.
  async join() {
    let sub = this.token ? tokenSubject(this.token) : null;
    if (!sub && this.getToken) {
      try {
        sub = tokenSubject(await this.currentToken());
      } catch { /* the leader finds out, and says unauthorized */ }
    }
    if (this.closed) return;
    const name = sub ? `${this.group}:${sub}` : this.group;
    this.channel = new BroadcastChannel(`push:${name}`);
    this.channel.onmessage = (event) => this.fromChannel(event.data);
    this.setRole("follower");
    this.channel.postMessage({ type: "hello" }); // a leader answers with its state
    navigator.locks.request(`push:leader:${name}`, () => new Promise((resolve) => {
      this.releaseLeadership = resolve;
      if (this.closed) return resolve();
      this.setRole("leader");
      this.open();
    }));
  }

  on(event, listener) {
    this.listeners[event].push(listener);
    if (event === "status") listener({ state: this.state, role: this.role });
    return this;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    this.source?.close();
    this.socket?.close();
    this.releaseLeadership?.();
    this.channel?.close();
    this.setState("closed");
  }

  emit(event, value) {
    for (const listener of this.listeners[event]) {
      try { listener(value); } catch (error) { console.error(error); }
    }
  }

  setRole(role) {
    this.role = role;
    this.emit("status", { state: this.state, role });
  }

  setState(state) {
    this.state = state;
    this.emit("status", { state, role: this.role });
    if (this.role === "leader") this.channel?.postMessage({ type: "status", state });
  }

  // What other tabs say: a new tab's hello, or the leader's state and events.
  fromChannel(message) {
    if (message.type === "hello") {
      if (this.role === "leader") this.channel.postMessage({ type: "status", state: this.state });
    } else if (message.type === "status") {
      if (this.role === "follower") {
        this.state = message.state;
        this.emit("status", { state: message.state, role: this.role });
      }
    } else {
      this.deliver(message, false);
    }
  }

  // The cursor (and the ids shown) of this user from now on.
  useSub(sub) {
    if (!sub || sub === this.sub) return;
    this.sub = sub;
    this.cursor = new Cursor(this.storage, cursorKey(this.group, sub));
    this.lastShown = null;
  }

  // Whom the next connection is for, as far as the page knows before the service says:
  // the user the service confirmed for this token (or cookie), else the token's `sub`,
  // else demo mode's user_id; null: unknown (connect without a cursor).
  presumedSub() {
    const confirmed = this.sub && this.confirmedToken === this.token ? this.sub : null;
    return confirmed || (this.token && tokenSubject(this.token)) || this.sub || this.params.user_id || null;
  }

  // The service's hello on a connection opened with `cursorSent` or without: true to go
  // on; false to reopen (nothing of this stream shown or acknowledged) with this user's
  // cursor, when the stream is another user's than the one whose cursor went with it, or
  // when it went without one and this user has one stored (a page that relies on the
  // cookie, on load: it must not lose what was written to its last connection but not
  // shown, which a stream from the delivered mark skips).
  //
  // Why a page that does not know its user sends no cursor at all, rather than presuming
  // the last user confirmed in this browser: every entry the service writes to a stream
  // moves that user's delivered mark, even on a stream the page drops after the hello. If
  // A's cursor went with B's stream (B logged in after A), B's mail written to it in the
  // moment before the page closed it is past B's mark, and B's reopened stream, without a
  // cursor of B's own, would start after it: lost. A stream opened without a cursor starts
  // after the mark, so what it writes before being dropped is after the cursor that
  // reopens it, and replayed from the history.
  welcome(user, cursorSent) {
    if (typeof user !== "string") return true;
    this.confirmedToken = this.token;
    if (user === this.sub) return true;
    this.useSub(user);
    return !cursorSent && !this.cursor.value;
  }

  // Every tab: show an event once, in order.
  deliver(message, relay) {
    if (message.user) this.useSub(message.user);
    if (message.type === "reset") {
      this.cursor.advance(message.id);
      this.emit("reset", { id: message.id });
    } else {
      // Each tab shows an id once: a replay after a reconnect or a new leader is dropped.
      if (this.lastShown && compareIds(message.id, this.lastShown) <= 0) return;
      this.lastShown = message.id;
      this.cursor.advance(message.id);
      this.emit("message", { id: message.id, data: message.data });
    }
    if (relay) {
      this.channel?.postMessage({ ...message, user: this.sub });
      if (message.type === "message") this.acknowledge(message.id);
    }
  }

  // A token that will not expire before this connection has done some work: a fresh one
  // from getToken when there is one and the current one is old (or `fresh` is asked).
  async currentToken(fresh = false) {
    if (!this.getToken) return this.token;
    const expiry = this.token ? tokenExpiry(this.token) : null;
    const stale = !this.token || (expiry !== null && expiry - Date.now() < 2000);
    if (fresh || stale) {
      try {
        this.token = await this.getToken();
      } catch (error) {
        throw new Unauthorized(`getToken failed: ${error}`);
      }
    }
    return this.token;
  }

  // The query parameters that identify the next stream: a ticket bought with the token
  // (POST /ticket, the token in a header; at `ticketUrl` if given, else the service's own),
  // or, without a token, the page's params alone (the cookie goes with the request).
  async identity(fresh = false) {
    const token = await this.currentToken(fresh);
    if (!token && !this.ticketUrl) return { ...this.params };
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const ticketUrl = this.ticketUrl || new URL("/ticket", this.base);
    const answer = await fetch(ticketUrl, { method: "POST", headers, credentials: "include" });
    if (answer.status === 401 || answer.status === 403) throw new Unauthorized(`ticket refused: ${answer.status}`);
    if (!answer.ok) throw new Error(`ticket refused: ${answer.status}`);
    return { ...this.params, ticket: (await answer.json()).ticket };
  }

  async open(fresh = false) {
    if (this.closed || this.state === "unauthorized") return;
    this.setState("connecting");
    const transport = this.transport === "auto" ? "ws" : this.transport;
    let params;
    try {
      params = await this.identity(fresh);
    } catch (error) {
      if (error instanceof Unauthorized) return this.refused();
      return this.retry(0);
    }
    if (this.closed) return;
    this.useSub(this.presumedSub());
    const cursor = this.cursor.value || this.lastShown;
    params = { ...params, hello: "1" };
    if (transport === "ws") this.openWs(params, cursor);
    else this.openSse(params, cursor);
  }

  // The service answered: credentials and transport work. Renew ahead of the token's exp.
  opened(transport) {
    this.attempt = 0;
    this.authFailures = 0;
    this.usedTransport = transport;
    this.setState("open");
    clearTimeout(this.renewTimer);
    const expiry = this.token ? tokenExpiry(this.token) : null;
    if (!this.getToken || expiry === null) return;
    const wait = Math.max(0, expiry - renewalLeadMs(expiry, Date.now()) - Date.now());
    this.renewTimer = setTimeout(() => this.renew(), wait);
  }

  async renew() {
    if (this.closed) return;
    try {
      await this.currentToken(true);
    } catch {
      return this.refused();
    }
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ token: this.token }));
      this.opened("ws");
    } else if (this.source) {
      this.source.close(); // the next stream uses the new token, resuming by cursor
      this.source = null;
      this.open();
    }
  }

  // The service refused the credentials (or the token ran out): try a new token, or stop.
  // A page with no token at all relies on its cookies (the token cookie, or the site's
  // session through PUSH_AUTH_URL), which the site may have renewed: it reopens too.
  refused() {
    this.authFailures += 1;
    const renewable = this.getToken || !this.token;
    if (!renewable || this.authFailures >= MAX_AUTH_FAILURES) {
      clearTimeout(this.renewTimer);
      this.source?.close();
      this.setState("unauthorized");
      return;
    }
    const delay = backoffMs(this.authFailures - 1);
    this.setState("connecting");
    this.timer = setTimeout(() => this.open(true), delay);
  }

  // What a failed handshake was: the status of the same request over fetch (with a new
  // ticket: the handshake's was spent). A WebSocket request without an upgrade is answered
  // 426 by a service that would have accepted it.
  async diagnose(transport, cursor) {
    let params;
    try {
      params = { ...(await this.identity()), hello: "1" };
    } catch (error) {
      return error instanceof Unauthorized ? 401 : 0;
    }
    const url = new URL(streamUrl(this.base, transport, params, cursor));
    if (transport === "ws") url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    const abort = new AbortController();
    try {
      const answer = await fetch(url, { credentials: "include", signal: abort.signal });
      return answer.status;
    } catch {
      return 0; // the network, not the service
    } finally {
      abort.abort(); // a stream that did open is not read
    }
  }

  retry(closeCode) {
    if (this.closed) return;
    const delay = backoffMs(this.attempt++, closeCode);
    this.setState("connecting");
    this.timer = setTimeout(() => this.open(), delay);
  }

  openSse(params, cursor) {
    const source = new EventSource(streamUrl(this.base, "sse", params, cursor), {
      withCredentials: this.base !== globalThis.location?.origin,
    });
    this.source = source;
    let opened = false;
    source.onopen = () => { opened = true; this.opened("sse"); };
    source.addEventListener("hello", (event) => {
      // EventSource's own reconnects send the last id it saw: a cursor too.
      if (this.welcome(JSON.parse(event.data).user, Boolean(cursor || source.seen))) return;
      source.close(); // reopen with this user's cursor (see welcome)
      this.source = null;
      this.open();
    });
    const deliver = (message) => {
      source.seen = true;
      this.deliver(message, true);
    };
    source.onmessage = (event) => deliver({ type: "message", id: event.lastEventId, data: event.data });
    source.addEventListener("reset", (event) => deliver({ type: "reset", id: event.lastEventId }));
    // The token ran out, or the user was disconnected: the stream's last event.
    const ended = () => {
      source.close();
      if (this.source === source) this.source = null;
      this.refused();
    };
    source.addEventListener("expired", ended);
    source.addEventListener("revoked", ended);
    source.onerror = async () => {
      if (this.source !== source) return;
      // EventSource reconnects by itself (with Last-Event-ID) unless it gave up, or the
      // identity was a single-use ticket or a token that may have run out: then reopen.
      if (source.readyState !== EventSource.CLOSED && !params.ticket && !this.getToken) {
        this.setState("connecting");
        return;
      }
      source.close();
      this.source = null;
      if (!opened && (await this.diagnose("sse", cursor)) === 401) return this.refused();
      this.retry(0);
    };
  }

  openWs(params, cursor) {
    let opened = false;
    const socket = new WebSocket(streamUrl(this.base, "ws", params, cursor));
    this.socket = socket;
    socket.onopen = () => { opened = true; this.opened("ws"); };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      const frame = JSON.parse(event.data);
      if (frame.hello) {
        if (this.welcome(frame.user, Boolean(cursor))) return;
        socket.replaced = true; // reopen with this user's cursor (see welcome)
        this.socket = null;
        socket.close();
        this.open();
      } else if (frame.reset) this.deliver({ type: "reset", id: frame.id }, true);
      else this.deliver({ type: "message", id: frame.id, data: frame.data }, true);
    };
    socket.onclose = async (event) => {
      if (this.closed || socket.replaced) return;
      if (this.socket === socket) this.socket = null;
      if (event.code === 4401 || event.code === 4403) return this.refused(); // token ran out, user disconnected
      if (opened) return this.retry(event.code);
      const status = await this.diagnose("ws", cursor);
      if (status === 401 || status === 403) return this.refused();
      if (status === 426 && this.transport === "auto") {
        // The service would have accepted it: something between broke the upgrade.
        this.transport = "sse";
        return this.open();
      }
      this.retry(status === 503 || status === 429 ? 1013 : event.code);
    };
  }

  acknowledge(id) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ ack: id }));
      return;
    }
    // SSE: one POST at a time, always for the newest id shown.
    this.pendingAck = id;
    if (this.acking) return;
    this.acking = true;
    const send = async () => {
      while (this.pendingAck) {
        const ackId = this.pendingAck;
        this.pendingAck = null;
        try {
          // The token goes in a header, never in the URL; without one the cookie (or, in
          // demo mode, the page's user_id) says who is acknowledging.
          const url = new URL("/ack", this.base);
          const headers = { "Content-Type": "application/json" };
          if (this.token) headers.Authorization = `Bearer ${this.token}`;
          else for (const [name, value] of Object.entries(this.params)) url.searchParams.set(name, value);
          await fetch(url, {
            method: "POST",
            headers,
            body: JSON.stringify({ id: ackId }),
            credentials: "include",
          });
        } catch { /* the next ack carries a newer id anyway */ }
      }
      this.acking = false;
    };
    send();
  }
}

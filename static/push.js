// push.js: the browser side of push, as a plain ES module (no build step).
//
//   import { connect } from "/static/push.js";
//   const push = connect({ url: "https://push.example.com", transport: "auto", token });
//   push.on("message", ({ id, data }) => show(data));
//   push.on("reset", ({ id }) => reloadState());
//   push.on("status", ({ state, role }) => badge(state, role));
//   push.close();
//
// One connection per browser per user: the tabs elect a leader with the Web Locks API;
// the leader holds the EventSource or WebSocket and relays every event to the other tabs
// over a BroadcastChannel. When the leader tab closes, the lock passes to another tab,
// which resumes from the cursor (the last event id) kept in localStorage. Without those
// APIs every tab connects on its own. Events are de-duplicated by id across reconnects and
// tabs, and the leader acknowledges what was shown, so the backend can ask for receipts.

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

/** Keeps the newest event id, and says whether an id is new (after it). */
export class Cursor {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
  }
  get value() {
    try { return this.storage?.getItem(this.key) || null; } catch { return null; }
  }
  isNew(id) {
    const current = this.value;
    return !current || compareIds(id, current) > 0;
  }
  advance(id) {
    if (!this.isNew(id)) return false;
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

class Push {
  constructor({ url, transport = "auto", token, ticketUrl, params = {}, user = "default" } = {}) {
    this.base = url || globalThis.location?.origin;
    this.transport = transport;
    this.token = token;
    this.ticketUrl = ticketUrl;
    this.params = params;
    this.listeners = { message: [], reset: [], status: [] };
    this.closed = false;
    this.role = "starting";
    this.state = "connecting";
    this.attempt = 0;
    const storage = globalThis.localStorage || new MemoryStorage();
    this.cursor = new Cursor(storage, `push:cursor:${user}`);
    this.lastShown = null; // in memory too, for storages that refuse writes
    const shared = globalThis.navigator?.locks && globalThis.BroadcastChannel;
    if (shared) {
      this.channel = new BroadcastChannel(`push:${user}`);
      this.channel.onmessage = (event) => this.fromChannel(event.data);
      this.setRole("follower");
      this.channel.postMessage({ type: "hello" }); // a leader answers with its state
      navigator.locks.request(`push:leader:${user}`, () => new Promise((resolve) => {
        this.releaseLeadership = resolve;
        if (this.closed) return resolve();
        this.setRole("leader");
        this.open();
      }));
    } else {
      this.setRole("alone");
      this.open();
    }
  }

  on(event, listener) {
    this.listeners[event].push(listener);
    if (event === "status") listener({ state: this.state, role: this.role });
    return this;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
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

  // Every tab: show an event once, in order.
  deliver(message, relay) {
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
      this.channel?.postMessage(message);
      if (message.type === "message") this.acknowledge(message.id);
    }
  }

  async identity() {
    if (this.ticketUrl) {
      const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      const answer = await fetch(this.ticketUrl, { method: "POST", headers, credentials: "include" });
      if (!answer.ok) throw new Error(`ticket refused: ${answer.status}`);
      return { ...this.params, ticket: (await answer.json()).ticket };
    }
    return this.token ? { ...this.params, token: this.token } : { ...this.params };
  }

  async open() {
    if (this.closed) return;
    this.setState("connecting");
    const transport = this.transport === "auto" ? "ws" : this.transport;
    let params;
    try {
      params = await this.identity();
    } catch {
      return this.retry(0);
    }
    if (transport === "ws") this.openWs(params);
    else this.openSse(params);
  }

  retry(closeCode) {
    if (this.closed) return;
    const delay = backoffMs(this.attempt++, closeCode);
    this.setState("connecting");
    this.timer = setTimeout(() => this.open(), delay);
  }

  openSse(params) {
    const source = new EventSource(streamUrl(this.base, "sse", params, this.cursor.value || this.lastShown), {
      withCredentials: this.base !== globalThis.location?.origin,
    });
    this.source = source;
    source.onopen = () => { this.attempt = 0; this.usedTransport = "sse"; this.setState("open"); };
    source.onmessage = (event) => this.deliver({ type: "message", id: event.lastEventId, data: event.data }, true);
    source.addEventListener("reset", (event) => this.deliver({ type: "reset", id: event.lastEventId }, true));
    source.onerror = () => {
      // EventSource reconnects by itself (with Last-Event-ID) unless it gave up, or the
      // identity was a single-use ticket: then reopen with a fresh one.
      if (source.readyState === EventSource.CLOSED || this.ticketUrl) {
        source.close();
        this.retry(0);
      } else {
        this.setState("connecting");
      }
    };
  }

  openWs(params) {
    let opened = false;
    const socket = new WebSocket(streamUrl(this.base, "ws", params, this.cursor.value || this.lastShown));
    this.socket = socket;
    socket.onopen = () => { opened = true; this.attempt = 0; this.usedTransport = "ws"; this.setState("open"); };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.reset) this.deliver({ type: "reset", id: frame.id }, true);
      else this.deliver({ type: "message", id: frame.id, data: frame.data }, true);
    };
    socket.onclose = (event) => {
      if (this.closed) return;
      if (!opened && this.transport === "auto") {
        // The upgrade never happened (a proxy that breaks WebSocket): use SSE from now on.
        this.transport = "sse";
        return this.open();
      }
      this.retry(event.code);
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
          const params = this.token ? { token: this.token } : this.params;
          const url = new URL("/ack", this.base);
          for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
          await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
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

// Unit tests of push.js's pure parts, under Node's own test runner (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  backoffMs,
  compareIds,
  connect,
  Cursor,
  cursorKey,
  renewalLeadMs,
  streamUrl,
  tokenExpiry,
  tokenSubject,
} from "../../static/push.js";

test("event ids compare by time, then by sequence, as numbers", () => {
  assert.equal(compareIds("9-0", "10-0"), -1);
  assert.equal(compareIds("10-1", "10-0"), 1);
  assert.equal(compareIds("1732630000000-7", "1732630000000-7"), 0);
  assert.equal(compareIds("18446744073709551615-0", "18446744073709551614-9"), 1);
});

test("backoff grows, is capped, and waits longer after 1012 and 1013", () => {
  const half = () => 0.5; // no jitter
  assert.equal(backoffMs(0, 1006, half), 250);
  assert.equal(backoffMs(3, 1006, half), 2000);
  assert.equal(backoffMs(30, 1006, half), 15000);
  assert.equal(backoffMs(0, 1012, half), 1000);
  assert.equal(backoffMs(0, 1013, half), 1000);
  assert.ok(backoffMs(0, 0, () => 0) >= 125 && backoffMs(0, 0, () => 0.999) <= 375);
});

test("stream URLs carry the identity and the cursor", () => {
  assert.equal(
    streamUrl("https://push.example.com", "ws", { ticket: "t" }, "5-0"),
    "wss://push.example.com/ws?ticket=t&last_event_id=5-0",
  );
  assert.equal(
    streamUrl("http://127.0.0.1:8000/", "sse", { user_id: "42", skipped: undefined }, null),
    "http://127.0.0.1:8000/stream?user_id=42",
  );
});

test("the cursor only moves forward and survives a storage that refuses writes", () => {
  const items = new Map();
  const storage = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v) };
  const cursor = new Cursor(storage, "push:cursor:42");
  assert.equal(cursor.value, null);
  assert.ok(cursor.advance("10-0"));
  assert.ok(!cursor.advance("9-5"));
  assert.ok(cursor.advance("10-1"));
  assert.equal(items.get("push:cursor:42"), "10-1");
  const refusing = new Cursor({ getItem: () => null, setItem: () => { throw new Error("full"); } }, "k");
  assert.doesNotThrow(() => refusing.advance("1-0"));
});

test("a cursor without a user keeps nothing, and cursors are filed per user", () => {
  const items = new Map();
  const storage = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, v) };
  const unknown = new Cursor(storage, null);
  assert.ok(unknown.advance("10-0"));
  assert.equal(unknown.value, null);
  assert.equal(items.size, 0);
  assert.equal(cursorKey("default", "alice"), "push:cursor:default:alice");
  assert.notEqual(cursorKey("default", "alice"), cursorKey("default", "bob"));
});

test("a token's expiry is read from its payload, whatever its base64url padding", () => {
  const encode = (claims) =>
    Buffer.from(JSON.stringify(claims)).toString("base64url");
  for (const sub of ["4", "42", "420"]) { // payloads of every length modulo 4
    const token = `${encode({ alg: "HS256" })}.${encode({ sub, exp: 1795710150 })}.sig`;
    assert.equal(tokenExpiry(token), 1795710150000);
  }
  assert.equal(tokenExpiry("not a token"), null);
  assert.equal(tokenExpiry(`x.${encode({ sub: "42" })}.y`), null); // no exp
});

test("a token's sub is read from its payload", () => {
  assert.equal(tokenSubject(jwt({ sub: "alice", exp: 1795710150 })), "alice");
  assert.equal(tokenSubject(jwt({ exp: 1795710150 })), null);
  assert.equal(tokenSubject(jwt({ sub: 42 })), null);
  assert.equal(tokenSubject("not a token"), null);
});

test("a token is renewed a fifth of its life ahead of its expiry, 1 to 60 s", () => {
  assert.equal(renewalLeadMs(3000, 0), 1000);
  assert.equal(renewalLeadMs(100_000, 0), 20_000);
  assert.equal(renewalLeadMs(3_600_000, 0), 60_000);
  assert.equal(renewalLeadMs(500, 1000), 1000); // already expired: soon
});

// --- the client in a fake browser: what goes in which URL ---------------------------

function jwt(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "HS256" })}.${encode(claims)}.signature`;
}

const TICKET = "T".repeat(43);

/** Globals a browser would have: fetch, WebSocket, EventSource, localStorage. */
function fakeBrowser(stored = {}) {
  const world = { requests: [], sockets: [], sources: [], storage: new Map(Object.entries(stored)) };
  globalThis.localStorage = {
    getItem: (k) => world.storage.get(k) ?? null,
    setItem: (k, v) => world.storage.set(k, String(v)),
  };
  globalThis.fetch = async (url, options = {}) => {
    world.requests.push({ url: String(url), method: options.method || "GET", headers: options.headers || {} });
    return { status: 200, ok: true, json: async () => ({ ticket: TICKET, expires_in: 30 }) };
  };
  globalThis.WebSocket = class {
    static OPEN = 1;
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      world.sockets.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    receive(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
    accept() { this.readyState = 1; this.onopen(); }
  };
  globalThis.EventSource = class {
    static CLOSED = 2;
    constructor(url) {
      this.url = url;
      this.listeners = {};
      world.sources.push(this);
    }
    addEventListener(type, listener) { this.listeners[type] = listener; }
    close() { this.readyState = 2; }
    dispatch(type, data, lastEventId = "") {
      const event = { data, lastEventId };
      if (type === "message") this.onmessage(event);
      else this.listeners[type](event);
    }
  };
  return world;
}

async function until(condition) {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(condition(), "the condition never held");
}

test("a page with a token opens its WebSocket with a ticket and acks in band", async () => {
  const world = fakeBrowser();
  const token = jwt({ sub: "alice", exp: Date.now() / 1000 + 3600 });
  const push = connect({ url: "https://push.example.com", transport: "ws", token });
  try {
    await until(() => world.sockets.length === 1);
    const [ticketRequest] = world.requests;
    assert.deepEqual(ticketRequest, {
      url: "https://push.example.com/ticket",
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
    });
    const socket = world.sockets[0];
    assert.equal(socket.url, `wss://push.example.com/ws?ticket=${TICKET}&hello=1`);
    socket.accept();
    socket.receive({ hello: true, user: "alice" });
    socket.receive({ id: "7-0", data: "hi" });
    assert.deepEqual(socket.sent, [{ ack: "7-0" }]);
    for (const { url } of world.requests) assert.ok(!url.includes(token) && !url.includes("token="));
  } finally {
    push.close();
  }
});

test("SSE acks carry the token in a header, never in the URL", async () => {
  const world = fakeBrowser();
  const token = jwt({ sub: "alice", exp: Date.now() / 1000 + 3600 });
  // Even a token handed over among the params stays out of URLs.
  const push = connect({ url: "https://push.example.com", transport: "sse", params: { token } });
  try {
    await until(() => world.sources.length === 1);
    const source = world.sources[0];
    assert.equal(source.url, `https://push.example.com/stream?ticket=${TICKET}&hello=1`);
    source.onopen();
    source.dispatch("hello", JSON.stringify({ user: "alice" }));
    source.dispatch("message", "hi", "7-0");
    await until(() => world.requests.some(({ url }) => url.endsWith("/ack")));
    const ack = world.requests.find(({ url }) => url.endsWith("/ack"));
    assert.deepEqual(ack, {
      url: "https://push.example.com/ack",
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    });
    for (const { url } of world.requests) assert.ok(!url.includes(token) && !url.includes("token="));
  } finally {
    push.close();
  }
});

test("the cursor sent is the token's user's, never another user's in the same browser", async () => {
  const world = fakeBrowser({
    "push:cursor:default": "99-0", // how an older push.js filed everyone's cursor
    "push:cursor:default:alice": "90-0",
    "push:cursor:default:bob": "5-0",
  });
  const push = connect({ transport: "ws", url: "https://push.example.com", token: jwt({ sub: "bob" }) });
  try {
    await until(() => world.sockets.length === 1);
    assert.ok(world.sockets[0].url.endsWith("&hello=1&last_event_id=5-0"));
    world.sockets[0].accept();
    world.sockets[0].receive({ hello: true, user: "bob" });
    world.sockets[0].receive({ id: "6-0", data: "for bob" });
    assert.equal(world.storage.get("push:cursor:default:bob"), "6-0");
    assert.equal(world.storage.get("push:cursor:default:alice"), "90-0");
  } finally {
    push.close();
  }
});

test("a page that relies on its cookie starts without a cursor, then files it under the hello's user", async () => {
  const world = fakeBrowser({ "push:cursor:default:alice": "90-0" });
  const push = connect({ transport: "sse", url: "https://push.example.com" });
  try {
    await until(() => world.sources.length === 1);
    const source = world.sources[0];
    assert.equal(source.url, "https://push.example.com/stream?hello=1"); // no ticket, no cursor
    assert.equal(world.requests.length, 0); // no ticket bought without a token
    source.onopen();
    source.dispatch("hello", JSON.stringify({ user: "bob" }));
    source.dispatch("message", "for bob", "3-0");
    assert.equal(world.storage.get("push:cursor:default:bob"), "3-0");
    assert.equal(world.storage.get("push:cursor:default:alice"), "90-0");
  } finally {
    push.close();
  }
});

test("a page that relies on its cookie reopens with the cursor the hello's user has stored", async () => {
  const world = fakeBrowser({ "push:cursor:default:alice": "90-0" });
  const push = connect({ transport: "ws", url: "https://push.example.com" });
  try {
    await until(() => world.sockets.length === 1);
    assert.equal(world.sockets[0].url, "wss://push.example.com/ws?hello=1"); // no cursor yet
    world.sockets[0].accept();
    world.sockets[0].receive({ hello: true, user: "alice" });
    world.sockets[0].receive({ id: "95-0", data: "after alice's delivered mark" }); // dropped
    assert.equal(world.sockets[0].readyState, 3);
    assert.equal(world.storage.get("push:cursor:default:alice"), "90-0");
    await until(() => world.sockets.length === 2); // alice's stream again, from her cursor
    assert.equal(world.sockets[1].url, "wss://push.example.com/ws?hello=1&last_event_id=90-0");
    world.sockets[1].accept();
    world.sockets[1].receive({ hello: true, user: "alice" });
    world.sockets[1].receive({ id: "91-0", data: "written to the last page, never shown" });
    assert.equal(world.sockets[1].readyState, 1); // her own cursor went with it: kept
    assert.equal(world.storage.get("push:cursor:default:alice"), "91-0");
  } finally {
    push.close();
  }
});

test("a stream that turns out to be another user's than the cursor sent is reopened", async () => {
  const world = fakeBrowser({ "push:cursor:default:alice": "90-0" });
  // The token says alice, but the service streams for bob (say, a cookie it read first).
  const push = connect({ transport: "ws", url: "https://push.example.com", token: jwt({ sub: "alice" }) });
  try {
    await until(() => world.sockets.length === 1);
    assert.ok(world.sockets[0].url.endsWith("last_event_id=90-0"));
    world.sockets[0].accept();
    world.sockets[0].receive({ hello: true, user: "bob" });
    world.sockets[0].receive({ id: "91-0", data: "from alice's cursor" }); // dropped
    assert.equal(world.sockets[0].readyState, 3);
    assert.equal(world.storage.get("push:cursor:default:bob"), undefined);
    await until(() => world.sockets.length === 2); // bob's stream again, from bob's cursor (none)
    assert.equal(world.sockets[1].url, `wss://push.example.com/ws?ticket=${TICKET}&hello=1`);
  } finally {
    push.close();
  }
});

test("a failed handshake is diagnosed with a new ticket, never the spent one or the token", async () => {
  const world = fakeBrowser();
  const token = jwt({ sub: "alice", exp: Date.now() / 1000 + 3600 });
  const push = connect({ url: "https://push.example.com", transport: "ws", token });
  try {
    await until(() => world.sockets.length === 1);
    world.sockets[0].onclose({ code: 1006 }); // refused before it opened
    await until(() => world.requests.length === 3);
    assert.deepEqual(
      world.requests.map(({ url, method }) => `${method} ${url}`),
      [
        "POST https://push.example.com/ticket",
        "POST https://push.example.com/ticket",
        `GET https://push.example.com/ws?ticket=${TICKET}&hello=1`,
      ],
    );
  } finally {
    push.close();
  }
});

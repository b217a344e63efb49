// Unit tests of push.js's pure parts, under Node's own test runner (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  backoffMs,
  compareIds,
  Cursor,
  renewalLeadMs,
  streamUrl,
  tokenExpiry,
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
    streamUrl("https://push.example.com", "ws", { token: "t" }, "5-0"),
    "wss://push.example.com/ws?token=t&last_event_id=5-0",
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

test("a token is renewed a fifth of its life ahead of its expiry, 1 to 60 s", () => {
  assert.equal(renewalLeadMs(3000, 0), 1000);
  assert.equal(renewalLeadMs(100_000, 0), 20_000);
  assert.equal(renewalLeadMs(3_600_000, 0), 60_000);
  assert.equal(renewalLeadMs(500, 1000), 1000); // already expired: soon
});

// The client against a real trionet server (tests/test_js_client.py starts it and passes
// TRIONET_TEST_URL, and two users' ids and session tokens), with Node's test runner and the
// `ws` package as the WebSocket.
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";

import { TrionetClient, idAt } from "../trionet-client.js";

const base = process.env.TRIONET_TEST_URL;
const alice = { id: Number(process.env.ALICE_ID), token: process.env.ALICE_TOKEN };
const bob = { id: Number(process.env.BOB_ID), token: process.env.BOB_TOKEN };
const wsUrl = `${base.replace(/^http/, "ws")}/ws`;

function client(user, options = {}) {
  return new TrionetClient({
    url: wsUrl, WebSocket, backoffBase: 50, backoffMax: 200,
    socketOptions: { headers: { Authorization: `Bearer ${user.token}` } }, ...options,
  });
}

/** The next event `name` whose detail passes `pick`, within `ms`. */
function next(target, name, pick = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(name, listener);
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    function listener(event) {
      if (!pick(event.detail)) return;
      clearTimeout(timer);
      target.removeEventListener(name, listener);
      resolve(event.detail);
    }
    target.addEventListener(name, listener);
  });
}

async function history(user, peer) {
  const r = await fetch(`${base}/api/messages/private?user=${peer.id}&limit=200`,
    { headers: { Authorization: `Bearer ${user.token}` } });
  assert.equal(r.status, 200);
  return (await r.json()).messages;
}

test("a message is acked, delivered, and the typed helpers speak the protocol", async () => {
  const a = client(alice);
  const b = client(bob);
  try {
    const online = Promise.all([next(a, "open"), next(b, "open")]);
    a.start();
    b.start();
    await online;
    const got = next(b, "frame", (f) => f.type === "private" && f.content === "hello bob");
    const acked = next(a, "ack");
    const sent = a.sendPrivate(bob.id, "hello bob");
    const { ack } = await acked;
    assert.equal(ack.client_id, sent.client_id);
    assert.equal(ack.persisted, true);
    const frame = await got;
    assert.equal(frame.id, ack.id);
    assert.equal(frame.from, alice.id);
    // a read receipt, and an edit, reach the other side
    const receipt = next(a, "frame", (f) => f.type === "read");
    assert.equal(b.read({ to: alice.id, upTo: frame.id }), true);
    assert.equal((await receipt).up_to, frame.id);
    const edited = next(b, "frame", (f) => f.type === "edited");
    a.edit(frame.id, "hello, bob");
    assert.equal((await edited).content, "hello, bob");
    // a refused frame: "failed", with the server's error
    const failed = next(a, "failed");
    a.sendPrivate(987654, "nobody");
    assert.equal((await failed).error.code, "unknown_user");
  } finally {
    a.stop();
    b.stop();
  }
});

test("a reconnect resumes from the last id: everything missed, exactly once", async () => {
  const a = client(alice);
  const b = client(bob, { since: idAt(Date.now() - 1000) });
  try {
    a.start();
    b.start();
    await Promise.all([next(a, "open"), next(b, "synced")]);
    const seen = [];
    b.addEventListener("frame", (event) => {
      if (event.detail.type === "private") seen.push(event.detail.content);
    });
    const first = next(b, "frame", (f) => f.content === "before");
    a.sendPrivate(bob.id, "before");
    await first;
    // bob's link dies without a close; alice writes meanwhile
    const offline = next(b, "state", (s) => s.state === "offline");
    b.ws.terminate();
    await offline;
    for (const text of ["missed 1", "missed 2"]) {
      const acked = next(a, "ack", (d) => d.frame.content === text);
      a.sendPrivate(bob.id, text);
      await acked;
    }
    await next(b, "synced", () => true, 10000); // reconnected, with backoff, and resumed
    assert.deepEqual(seen, ["before", "missed 1", "missed 2"]);
  } finally {
    a.stop();
    b.stop();
  }
});

test("a frame sent while offline goes out on connect, and is stored once", async () => {
  const a = client(alice);
  try {
    const text = `queued ${Date.now()}`;
    const sent = a.sendPrivate(bob.id, text); // not connected yet: kept
    assert.equal(a.unacked().length, 1);
    const acked = next(a, "ack");
    a.start();
    const { ack } = await acked;
    assert.equal(ack.client_id, sent.client_id);
    assert.equal(a.unacked().length, 0);
    // sent again by hand under the same client_id: the original ack, nothing stored twice
    const again = next(a, "ack");
    a.pending.set(sent.client_id, { frame: sent, sentAt: 0 });
    a.ws.send(JSON.stringify(sent));
    assert.equal((await again).ack.id, ack.id);
    const stored = (await history(alice, bob)).filter((m) => m.content === text);
    assert.equal(stored.length, 1);
  } finally {
    a.stop();
  }
});

test("frames are deduplicated by id", () => {
  const c = new TrionetClient({ url: wsUrl, WebSocket });
  let count = 0;
  c.addEventListener("frame", () => { count += 1; });
  const frame = { type: "private", id: idAt(Date.now()), from: 1, to: 2, content: "x" };
  c.handle(frame);
  c.handle({ ...frame });
  assert.equal(count, 1);
  assert.equal(c.lastId, frame.id);
});

test("a refused handshake asks checkSession, and false ends the client", async () => {
  const c = new TrionetClient({
    url: wsUrl, WebSocket, backoffBase: 50, checkSession: async () => false,
    socketOptions: { headers: { Authorization: "Bearer not-a-session" } },
  });
  const ended = next(c, "session-ended");
  c.start();
  await ended;
  assert.equal(c.stopped, true);
});

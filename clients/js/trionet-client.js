// trionet-client.js: a client of trionet's WebSocket protocol (docs/protocol.md), for
// browsers and Node.js, one ES module with no dependencies and no build step. The chat page at
// / runs on this same file (trionet/static/trionet-client.js is a link to it).
//
// What keeps a connection whole: reconnect with exponential backoff and jitter; resume with
// ?since=<last message id>&since_notification=<last notification id> so nothing sent
// meanwhile is missed (then "synced", or "gap" when older frames must come from history);
// resend of every unacknowledged message with its client_id (the server answers a resend with
// the original ack); ?coalesce=1 frames split on "\n"; frames deduplicated by id; and an
// application ping, since a browser cannot see a silently dead link.
//
// Events (CustomEvent, the payload in .detail): "state" {state, retryAt, attempt}, "open",
// "frame" (a message, notification, presence, typing, read, edited, deleted or broadcast
// frame), "ack" {frame, ack}, "failed" {frame, error}, "error" (an error frame answering no
// message of ours), "synced", "gap" (older frames must come from history), "session-ended".

const EPOCH_MS = Date.UTC(2025, 0, 1);
const RESUMABLE = new Set(["private", "group", "notification"]);
const SEEN_MAX = 5000;

/** The smallest message id the server can allocate at `ms` (ids: ms since 2025 << 12). */
export function idAt(ms) {
  return Math.max(0, Math.floor(ms) - EPOCH_MS) * 4096;
}

export class TrionetClient extends EventTarget {
  /**
   * `url`: the WebSocket endpoint (default: /ws of the page's own origin). `since`: the
   * resume point for the first connection (an id from the server's clock, see idAt), so the
   * very first connection already replays what arrived before it. `WebSocket`: the
   * implementation (default: the global one; in Node.js before 22, the `ws` package's), and
   * `socketOptions` its second argument (with `ws`: {headers: {Authorization: "Bearer ..."}}).
   * `checkSession`: called after a refused handshake; resolving to false ends the client
   * ("session-ended"), as a 4001 close does.
   */
  constructor({ url, since, WebSocket: Socket, socketOptions, checkSession,
    backoffBase = 500, backoffMax = 10000, pingEvery = 15000, resendAfter = 10000 } = {}) {
    super();
    this.endpoint = url ?? null;
    this.Socket = Socket ?? globalThis.WebSocket;
    this.socketOptions = socketOptions;
    this.checkSessionWith = checkSession ?? null;
    this.lastId = since ?? null;
    this.lastNotificationId = since ?? null;
    this.backoffBase = backoffBase;
    this.backoffMax = backoffMax;
    this.pingEvery = pingEvery;
    this.resendAfter = resendAfter;
    this.pending = new Map(); // client_id -> {frame, sentAt}, in send order
    this.seen = new Set();
    this.seenOrder = [];
    this.ws = null;
    this.attempt = 0;
    this.state = "connecting";
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.heardAt = 0;
    this.counter = 0;
    this.prefix = Math.random().toString(36).slice(2, 10);
  }

  start() {
    if (typeof window !== "undefined") window.addEventListener("online", () => this.retryNow());
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === 1; // OPEN, in every implementation
  }

  /** Send a message frame; it is kept, and resent after reconnects, until acked or refused. */
  send(frame) {
    const clientId = `${this.prefix}-${Date.now().toString(36)}-${++this.counter}`;
    const full = { ...frame, client_id: clientId };
    this.pending.set(clientId, { frame: full, sentAt: Date.now() });
    if (this.isOpen) this.ws.send(JSON.stringify(full));
    return full;
  }

  /** A private message to user `to`; resolves nothing, see the "ack" and "failed" events. */
  sendPrivate(to, content) {
    return this.send({ type: "private", to, content });
  }

  /** A message to group `groupId`. */
  sendGroup(groupId, content) {
    return this.send({ type: "group", group_id: groupId, content });
  }

  /** Replace the content of one of my messages. */
  edit(id, content) {
    return this.send({ type: "edit", id, content });
  }

  /** Delete a message (mine, one of my group's as its owner, or any as an admin). */
  remove(id) {
    return this.send({ type: "delete", id });
  }

  /** I have read the conversation with user `to` (or group `groupId`) up to message `upTo`. */
  read({ to, groupId, upTo }) {
    return this.sendEphemeral(to !== undefined
      ? { type: "read", to, up_to: upTo } : { type: "read", group_id: groupId, up_to: upTo });
  }

  /** I am typing to user `to` (or in group `groupId`): now or never. */
  typing({ to, groupId }) {
    return this.sendEphemeral(to !== undefined
      ? { type: "typing", to } : { type: "typing", group_id: groupId });
  }

  /** Send an ephemeral frame (typing): now or never. */
  sendEphemeral(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Messages sent but not yet acknowledged, oldest first. */
  unacked() {
    return [...this.pending.values()].map((p) => p.frame);
  }

  /** Reconnect at once instead of waiting out the backoff. */
  retryNow() {
    if (this.stopped || this.ws !== null) return;
    this.connect();
  }

  url() {
    let base = this.endpoint;
    if (base === null) {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      base = `${scheme}://${location.host}/ws`;
    }
    const params = ["coalesce=1"];
    if (this.lastId !== null) {
      params.push(`since=${this.lastId}`);
      if (this.lastNotificationId !== null) {
        params.push(`since_notification=${this.lastNotificationId}`);
      }
    }
    return `${base}${base.includes("?") ? "&" : "?"}${params.join("&")}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.setState("connecting");
    let ws;
    try {
      ws = this.socketOptions === undefined
        ? new this.Socket(this.url()) : new this.Socket(this.url(), this.socketOptions);
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.heardAt = Date.now();
      this.setState("online");
      this.emit("open");
      for (const entry of this.pending.values()) {
        entry.sentAt = Date.now();
        ws.send(JSON.stringify(entry.frame));
      }
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.tick(ws), this.pingEvery);
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      this.heardAt = Date.now();
      for (const line of event.data.split("\n")) {
        if (!line) continue;
        let frame;
        try {
          frame = JSON.parse(line);
        } catch (err) {
          continue;
        }
        this.handle(frame);
      }
    };
    ws.onclose = (event) => this.closed(ws, event.code, opened);
    // a refused handshake or a broken link: the close that follows retries (Node's `ws`
    // throws an error event nobody listens to)
    ws.onerror = () => {};
  }

  /** Every `pingEvery`: ping; drop a link silent for too long; resend stale messages. */
  tick(ws) {
    if (ws !== this.ws) return;
    if (Date.now() - this.heardAt > 2 * this.pingEvery + 5000) {
      ws.onclose = null;
      ws.close();
      this.closed(ws, 1006, true);
      return;
    }
    ws.send(JSON.stringify({ type: "ping", client_id: "ping" }));
    for (const entry of this.pending.values()) {
      if (Date.now() - entry.sentAt > this.resendAfter) { // e.g. dropped by the rate limit
        entry.sentAt = Date.now();
        ws.send(JSON.stringify(entry.frame));
      }
    }
  }

  closed(ws, code, opened) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (code === 4001) {
      this.stop();
      this.emit("session-ended");
      return;
    }
    if (!opened) this.checkSession(); // a refused handshake looks like any failure
    this.scheduleRetry();
  }

  async checkSession() {
    if (this.checkSessionWith === null) return;
    let alive;
    try {
      alive = await this.checkSessionWith();
    } catch (err) {
      return; // the server is down: the next try asks again
    }
    if (alive === false && !this.stopped) {
      this.stop();
      this.emit("session-ended");
    }
  }

  scheduleRetry() {
    const delay = Math.min(this.backoffMax, this.backoffBase * 2 ** this.attempt)
      * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 20);
    this.setState("offline", Date.now() + delay);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, retryAt = null) {
    this.state = state;
    this.emit("state", { state, retryAt, attempt: this.attempt });
  }

  handle(frame) {
    const type = frame.type;
    if (type === "ack" || (type === "error" && this.pending.has(frame.client_id))) {
      const entry = this.pending.get(frame.client_id);
      if (!entry) return; // the second answer to a frame resent before its ack came
      this.pending.delete(frame.client_id);
      if (type === "ack") {
        if (Number.isInteger(frame.id)) this.remember(frame.id);
        this.emit("ack", { frame: entry.frame, ack: frame });
      } else {
        this.emit("failed", { frame: entry.frame, error: frame });
      }
      return;
    }
    if (type === "pong") return;
    if (type === "error") {
      this.emit("error", frame);
      return;
    }
    if (type === "synced") {
      this.advance("lastId", frame.last_id);
      this.advance("lastNotificationId", frame.last_notification_id);
      this.emit("synced", frame);
      return;
    }
    if (type === "sync_gap") {
      this.emit("gap", frame);
      return;
    }
    if (RESUMABLE.has(type) && Number.isInteger(frame.id)) {
      if (this.seen.has(frame.id)) return; // a replay overlapping what arrived live
      this.remember(frame.id);
      if (frame.persisted !== false) { // not stored yet: not a resume point
        this.advance(type === "notification" ? "lastNotificationId" : "lastId", frame.id);
      }
    }
    this.emit("frame", frame);
  }

  remember(id) {
    this.seen.add(id);
    this.seenOrder.push(id);
    if (this.seenOrder.length > SEEN_MAX) this.seen.delete(this.seenOrder.shift());
  }

  advance(field, id) {
    if (Number.isInteger(id) && (this[field] === null || id > this[field])) {
      this[field] = id;
    }
  }

  emit(name, detail = null) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

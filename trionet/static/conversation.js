// conversation.js: the right pane, one private chat or group at a time. History comes from
// the HTTP API, newest page first, older pages as you scroll up (before_id); live and
// replayed messages are inserted in id order, each id once; my own messages show "sending…"
// until their ack and "sent" after; "typing…" shows for a few seconds when the other side
// types, and my typing is sent at most every 2 s. In a group, the header has an invite form.
// While the page is visible, what the open conversation shows is marked read (a "read"
// frame up to its newest message); in a private chat, "Seen" stands under the last of my
// messages the other side has read. My own messages can be edited and deleted in place (Edit,
// and Delete twice to confirm); edits and deletes by anyone show live ("edited" / "deleted"
// frames, and history shows messages as they are now). A private chat's header has Block /
// Unblock (neither side can then write to the other; see docs/api.md, Blocking).

import { get, post, query } from "./api.js";
import { byId, el, flash, shortTime } from "./dom.js";
import { dot, isOnline, nameNode, nameOf, rememberUser } from "./people.js";

const PAGE = 50;
const TYPING_EVERY = 2000; // ms between my typing frames
const TYPING_SHOWN = 3000; // ms "typing…" stays after the last frame
const READ_EVERY = 1000; // ms: at most one read frame this often while messages arrive

export class Conversation {
  constructor({ me, socket, sidebar }) {
    this.me = me;
    this.socket = socket;
    this.sidebar = sidebar;
    this.target = null; // {kind: "user" | "group", id}
    this.generation = 0; // bumps on open: late answers for another conversation are dropped
    this.ids = new Set();
    this.hasMore = false;
    this.loading = false;
    this.typers = new Map(); // user id -> timer
    this.typingSentAt = 0;
    this.typingSupported = true; // until the server answers unknown_type
    this.readSent = new Map(); // conversation key -> the last up_to this page sent
    this.readTimer = null;
    this.list = byId("messages");
    this.input = byId("composer-input");
    this.status = byId("pane-status");
    this.list.addEventListener("scroll", () => {
      if (this.list.scrollTop < 80) this.loadOlder();
    });
    byId("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendTyped();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendTyped();
      }
    });
    this.input.addEventListener("input", () => this.typed());
    byId("invite-form").addEventListener("submit", (e) => this.invite(e));
    document.addEventListener("presence-changed", () => this.paintPresence());
    document.addEventListener("visibilitychange", () => this.markRead());
    document.addEventListener("trionet:blocks-changed", () => this.paintBlock());
    byId("block-toggle").addEventListener("click", () => this.toggleBlock());
  }

  get key() {
    return this.target ? `${this.target.kind}:${this.target.id}` : null;
  }

  /** Open a conversation: {kind: "user" | "group", id}. */
  async open(target) {
    this.flushRead(); // what the last conversation showed was read before leaving it
    this.target = target;
    this.generation += 1;
    this.ids = new Set();
    this.hasMore = false;
    this.loading = false;
    this.clearTypers();
    this.list.replaceChildren();
    this.list.classList.remove("loaded");
    this.status.textContent = "";
    const isGroup = target.kind === "group";
    const title = byId("pane-title");
    title.replaceChildren(isGroup ? this.sidebar.groupName(target.id) : nameNode(target.id));
    byId("invite-form").hidden = !isGroup;
    byId("composer").hidden = false;
    this.input.setAttribute("aria-label", isGroup
      ? `Message to ${this.sidebar.groupName(target.id)}` : `Message to ${nameOf(target.id)}`);
    const presence = byId("pane-presence");
    presence.hidden = isGroup;
    presence.replaceChildren();
    if (!isGroup) presence.append(dot(target.id), el("span", { className: "presence-text" }));
    this.paintPresence();
    this.paintBlock();
    this.sidebar.setActive(this.key);
    for (const frame of this.socket.unacked()) {
      if (this.belongs(frame, true)) this.showPending(frame);
    }
    await this.loadPage(null);
    if (this.key === `${target.kind}:${target.id}`) this.input.focus();
    this.markRead();
  }

  /** Drop what is shown and load the newest page again (after a sync gap). */
  async reload() {
    if (this.target) await this.open(this.target);
  }

  paintBlock() {
    const button = byId("block-toggle");
    button.hidden = this.target?.kind !== "user";
    if (button.hidden) return;
    const blocked = this.sidebar.blocked.has(this.target.id);
    button.textContent = blocked ? "Unblock" : "Block";
    button.setAttribute("aria-pressed", String(blocked));
  }

  async toggleBlock() {
    if (this.target?.kind !== "user") return;
    const { id } = this.target;
    const name = nameOf(id);
    try {
      const blocked = await this.sidebar.setBlocked(id, !this.sidebar.blocked.has(id));
      flash(this.status, blocked
        ? `You blocked ${name}: neither of you can write to the other.`
        : `You unblocked ${name}.`, 6000);
    } catch (err) {
      flash(this.status, err.message, 6000);
    }
    this.paintBlock();
  }

  paintPresence() {
    const text = byId("pane-presence").querySelector(".presence-text");
    if (text && this.target) text.textContent = isOnline(this.target.id) ? "online" : "offline";
  }

  /** Does a message frame (received, or mine being sent) belong to the open conversation? */
  belongs(frame, outgoing = false) {
    if (!this.target) return false;
    if (frame.type === "group") {
      return this.target.kind === "group" && Number(frame.group_id) === this.target.id;
    }
    if (frame.type !== "private" || this.target.kind !== "user") return false;
    const other = outgoing || frame.from === this.me.id ? frame.to : frame.from;
    return other === this.target.id;
  }

  historyPath(beforeId) {
    const { kind, id } = this.target;
    const params = { limit: PAGE, before_id: beforeId };
    return kind === "group"
      ? `/api/messages/group${query({ group: id, ...params })}`
      : `/api/messages/private${query({ user: id, ...params })}`;
  }

  async loadPage(beforeId) {
    const generation = this.generation;
    this.loading = true;
    let data;
    try {
      data = await get(this.historyPath(beforeId));
    } catch (err) {
      if (generation === this.generation) {
        this.loading = false;
        flash(this.status, `Could not load messages: ${err.message}`, 6000);
      }
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    this.hasMore = data.has_more;
    const fromBottom = this.list.scrollHeight - this.list.scrollTop;
    for (const message of data.messages) this.showMessage(message);
    if (beforeId === null) this.scrollToEnd();
    else this.list.scrollTop = this.list.scrollHeight - fromBottom;
    this.paintSeen();
    this.list.classList.add("loaded"); // an empty list now says so (style.css)
    // a short first page does not scroll: fetch more until it does or history ends
    if (this.hasMore && this.list.scrollHeight <= this.list.clientHeight) this.loadOlder();
  }

  loadOlder() {
    if (!this.target || this.loading || !this.hasMore) return;
    const oldest = [...this.ids].reduce((a, b) => Math.min(a, b), Infinity);
    if (Number.isFinite(oldest)) this.loadPage(oldest);
  }

  /** A live or replayed message frame. */
  onMessage(frame) {
    if (!this.belongs(frame)) return;
    this.typerStopped(frame.from);
    const atEnd = this.nearEnd();
    this.showMessage(frame);
    if (atEnd || frame.from === this.me.id) this.scrollToEnd();
    this.paintSeen();
    // one read a second at most while messages stream in (each read is a write on the server)
    if (this.readTimer === null) {
      this.readTimer = setTimeout(() => { this.readTimer = null; this.markRead(); }, READ_EVERY);
    }
  }

  /** Send now a read that waits for its timer. */
  flushRead() {
    if (this.readTimer === null) return;
    clearTimeout(this.readTimer);
    this.readTimer = null;
    this.markRead();
  }

  /** Tell the server (and my other tabs) that I have read the open conversation so far. */
  markRead() {
    if (!this.target || document.visibilityState !== "visible") return;
    const newest = [...this.ids].reduce((a, b) => Math.max(a, b), 0);
    const key = this.key;
    if (newest <= (this.readSent.get(key) ?? 0)) return;
    const { kind, id } = this.target;
    const sent = this.socket.sendEphemeral(kind === "group"
      ? { type: "read", group_id: id, up_to: newest }
      : { type: "read", to: id, up_to: newest });
    if (sent) this.readSent.set(key, newest);
  }

  /** A "read" frame: the other side's receipt moves "Seen". */
  onRead(frame) {
    if (this.target?.kind === "user" && frame.from === this.target.id) this.paintSeen();
  }

  /** "Seen" under the last of my messages the other side of a private chat has read. */
  paintSeen() {
    for (const old of this.list.querySelectorAll(".seen")) old.remove();
    if (this.target?.kind !== "user") return;
    const upTo = this.sidebar.peerRead.get(this.target.id) ?? 0;
    const mine = [...this.list.querySelectorAll(".msg.mine[data-id]")]
      .filter((node) => Number(node.dataset.id) <= upTo);
    if (mine.length) mine[mine.length - 1].append(el("p", { className: "seen" }, "Seen"));
  }

  /** Render one stored message (history, live or replay); each id once, in id order. */
  showMessage(message) {
    if (!Number.isInteger(message.id) || this.ids.has(message.id)) return;
    this.ids.add(message.id);
    const mine = message.from === this.me.id;
    const node = this.messageNode(message, mine);
    if (mine) this.setState(node, "sent", message.persisted !== false);
    this.insert(node, message.id);
  }

  messageNode(message, mine) {
    const node = el("li", { className: `msg ${mine ? "mine" : "theirs"}`,
      dataset: message.id ? { id: String(message.id) } : {} },
    el("div", { className: "meta" },
      mine ? el("span", { className: "name" }, "You") : nameNode(message.from),
      el("time", { dateTime: message.timestamp ?? "" }, shortTime(message.timestamp)),
      mine ? el("span", { className: "state" }) : null),
    el("p", { className: "text", dir: "auto" }, message.content ?? ""));
    if (message.deleted) this.showDeleted(node);
    else if (message.edited_at) this.showEdited(node, message.content);
    else if (mine && message.id) this.addActions(node);
    return node;
  }

  /** Edit and Delete under one of my stored messages. */
  addActions(node) {
    if (node.querySelector(".actions")) return;
    const del = el("button", { type: "button", onclick: () => this.confirmDelete(node, del) },
      "Delete");
    node.append(el("div", { className: "actions" },
      el("button", { type: "button", onclick: () => this.startEdit(node) }, "Edit"), del));
  }

  startEdit(node) {
    if (node.querySelector(".edit-form")) return;
    const text = node.querySelector(".text");
    const before = text.textContent;
    const input = el("input", { value: before, attrs: { "aria-label": "Edit message" } });
    const form = el("form", { className: "edit-form" }, input,
      el("button", { type: "submit" }, "Save"),
      el("button", { type: "button", className: "secondary", onclick: () => done() },
        "Cancel"));
    const done = () => {
      form.remove();
      text.hidden = false;
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const content = input.value.trim();
      if (content && content !== before) {
        if (!this.socket.sendEphemeral({ type: "edit", id: Number(node.dataset.id), content })) {
          flash(this.status, "Offline: the edit was not sent.", 6000);
          return;
        }
        this.showEdited(node, content);
      }
      done();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") done();
    });
    text.hidden = true;
    text.after(form);
    input.focus();
  }

  /** The first click arms the button for a few seconds; the second deletes. */
  confirmDelete(node, button) {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Delete for everyone?";
      setTimeout(() => { button.dataset.armed = ""; button.textContent = "Delete"; }, 4000);
      return;
    }
    if (!this.socket.sendEphemeral({ type: "delete", id: Number(node.dataset.id) })) {
      flash(this.status, "Offline: the message was not deleted.", 6000);
      return;
    }
    this.showDeleted(node);
  }

  showEdited(node, content) {
    node.querySelector(".text").textContent = content;
    const meta = node.querySelector(".meta");
    if (!meta.querySelector(".edited")) {
      meta.querySelector("time").after(el("span", { className: "edited" }, "(edited)"));
    }
    if (node.classList.contains("mine") && node.dataset.id) this.addActions(node);
  }

  showDeleted(node) {
    node.classList.add("deleted");
    node.querySelector(".text").textContent = "Message deleted";
    node.querySelector(".text").hidden = false;
    for (const gone of node.querySelectorAll(".actions, .edit-form, .edited")) gone.remove();
  }

  /** An "edited" or "deleted" frame (live or replayed) for a message that may be shown. */
  onChanged(frame) {
    const node = this.list.querySelector(`.msg[data-id="${CSS.escape(String(frame.id))}"]`);
    if (!node) return;
    if (frame.type === "deleted") this.showDeleted(node);
    else this.showEdited(node, frame.content);
  }

  /** "sending…", "sent" or "not sent: …"; `saved` false: delivered, still being stored. */
  setState(node, text, saved = true) {
    const state = node.querySelector(".state");
    if (state) state.textContent = text;
    if (!saved) node.title = "delivered; the server is still saving it";
    node.classList.toggle("pending", text === "sending…");
    node.classList.toggle("failed", text.startsWith("not sent"));
  }

  /** Insert in id order; messages still being sent stay last. */
  insert(node, id) {
    let before = null;
    for (let at = this.list.lastElementChild; at; at = at.previousElementSibling) {
      if (at.dataset.id !== undefined && Number(at.dataset.id) < id) break;
      before = at;
    }
    this.list.insertBefore(node, before);
  }

  showPending(frame) {
    const node = this.messageNode({ from: this.me.id, content: frame.content,
      timestamp: new Date().toISOString() }, true);
    node.dataset.clientId = frame.client_id;
    this.setState(node, "sending…");
    this.list.append(node);
    this.scrollToEnd();
  }

  /** The server acknowledged one of my messages. */
  onAck({ frame, ack }) {
    const node = this.list.querySelector(`[data-client-id="${CSS.escape(frame.client_id)}"]`);
    if (!node) return;
    if (!Number.isInteger(ack.id) || this.ids.has(ack.id)) { // already shown (a replay)
      node.remove();
      return;
    }
    node.remove();
    delete node.dataset.clientId;
    node.dataset.id = String(ack.id);
    node.querySelector("time").dateTime = ack.timestamp;
    node.querySelector("time").textContent = shortTime(ack.timestamp);
    this.ids.add(ack.id);
    this.setState(node, "sent", ack.persisted);
    this.insert(node, ack.id);
    this.addActions(node);
    this.paintSeen();
  }

  /** The server refused one of my messages. */
  onFailed({ frame, error }) {
    const node = this.list.querySelector(`[data-client-id="${CSS.escape(frame.client_id)}"]`);
    if (node) this.setState(node, `not sent: ${error.message}`);
  }

  sendTyped() {
    const content = this.input.value.trim();
    if (!content || !this.target) return;
    const { kind, id } = this.target;
    const frame = this.socket.send(kind === "group"
      ? { type: "group", group_id: id, content }
      : { type: "private", to: id, content });
    this.input.value = "";
    this.typingSentAt = 0;
    this.showPending(frame);
  }

  /** The composer changed: tell the other side I am typing (at most every 2 s). */
  typed() {
    if (!this.target || !this.typingSupported || !this.input.value.trim()) return;
    const now = Date.now();
    if (now - this.typingSentAt < TYPING_EVERY) return;
    this.typingSentAt = now;
    const { kind, id } = this.target;
    this.socket.sendEphemeral(kind === "group"
      ? { type: "typing", group_id: id }
      : { type: "typing", to: id });
  }

  /** A typing frame: {from, to} (private) or {from, group_id}. */
  onTyping(frame) {
    if (!this.target || frame.from === this.me.id) return;
    const here = frame.group_id !== undefined
      ? this.target.kind === "group" && Number(frame.group_id) === this.target.id
      : this.target.kind === "user" && frame.from === this.target.id;
    if (!here) return;
    clearTimeout(this.typers.get(frame.from));
    this.typers.set(frame.from, setTimeout(() => this.typerStopped(frame.from), TYPING_SHOWN));
    this.paintTyping();
  }

  typerStopped(userId) {
    if (!this.typers.has(userId)) return;
    clearTimeout(this.typers.get(userId));
    this.typers.delete(userId);
    this.paintTyping();
  }

  clearTypers() {
    for (const timer of this.typers.values()) clearTimeout(timer);
    this.typers.clear();
    this.paintTyping();
  }

  paintTyping() {
    const who = [...this.typers.keys()].map((id) => nameOf(id));
    byId("typing").textContent = who.length
      ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
  }

  async invite(event) {
    event.preventDefault();
    const input = byId("invite-name");
    const name = input.value.trim();
    if (!name || this.target?.kind !== "group") return;
    try {
      const found = await get(`/api/users?username=${encodeURIComponent(name)}`);
      const user = found.users[0];
      rememberUser(user);
      await post("/api/groups/invite", { group_id: this.target.id, user_id: user.id });
      input.value = "";
      flash(this.status, `Invited ${user.username}.`);
    } catch (err) {
      flash(this.status, err.status === 404 ? `No user named “${name}”.` : err.message, 6000);
    }
  }

  nearEnd() {
    return this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}

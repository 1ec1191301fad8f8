// sidebar.js: the left column. My groups, pending invites (accept / decline), the people I
// talk to (GET /api/conversations) with a live online dot and an unread count each, and the
// forms to create a group and to open a chat with someone by username. It renders from the
// HTTP API and is nudged by live frames; opening a conversation goes through location.hash
// ("#/user/<id>", "#/group/<id>"), so reloads and the back button keep it. Unread counts are
// the server's (they survive a reload and follow reads in other tabs: a "read" frame of my
// own makes the lists load again); it also keeps how far each peer has read ("seen") and
// whom I block (GET /api/blocks).

import { ApiError, get, post, request } from "./api.js";
import { byId, el, flash } from "./dom.js";
import { dot, nameNode, refreshOnline, rememberUser } from "./people.js";

/** The hash that opens a conversation. */
export function hashFor(kind, id) {
  return `#/${kind}/${id}`;
}

export class Sidebar {
  constructor(me) {
    this.me = me;
    this.groups = new Map(); // id -> group
    this.invites = [];
    this.people = new Map(); // user id -> last message id (most recent first)
    this.unread = new Map(); // "user:2" / "group:1" -> count
    this.peerRead = new Map(); // user id -> the id of the last message they have read
    this.blocked = new Set(); // user ids I block
    this.active = null;
    this.reloadTimer = null;
    this.error = byId("sidebar-error");
    byId("new-group-form").addEventListener("submit", (e) => this.createGroup(e));
    byId("new-chat-form").addEventListener("submit", (e) => this.openChat(e));
  }

  async refresh() {
    await Promise.all([this.loadGroups(), this.loadPeople(), this.loadBlocks()]);
  }

  async loadBlocks() {
    this.blocked = new Set((await get("/api/blocks")).blocked);
    document.dispatchEvent(new CustomEvent("trionet:blocks-changed"));
  }

  /** Block or unblock a user; resolves to whether they are blocked now. */
  async setBlocked(userId, blocked) {
    if (blocked) await post(`/api/users/${userId}/block`);
    else await request("DELETE", `/api/users/${userId}/block`);
    if (blocked) this.blocked.add(userId);
    else this.blocked.delete(userId);
    return blocked;
  }

  async loadGroups() {
    const data = await get("/api/groups");
    this.groups = new Map(data.groups.map((g) => [g.id, g]));
    this.invites = data.invites;
    for (const g of data.groups) this.setUnread(`group:${g.id}`, g.unread_count);
    this.renderGroups();
    this.renderInvites();
  }

  async loadPeople() {
    const data = await get("/api/conversations?limit=200");
    for (const c of data.conversations) {
      rememberUser(c.user);
      const known = this.people.get(c.user.id) ?? 0;
      this.people.set(c.user.id, Math.max(known, c.last_message.id));
      this.setUnread(`user:${c.user.id}`, c.unread_count);
      if (Number.isInteger(c.peer_read_id)) this.peerHasRead(c.user.id, c.peer_read_id);
    }
    this.renderPeople();
    await refreshOnline([...this.people.keys()]);
  }

  groupName(id) {
    return this.groups.get(id)?.name ?? `group ${id}`;
  }

  /** The server's unread count of a conversation (none while it is the open one). */
  setUnread(key, count) {
    if (count > 0 && key !== this.active) this.unread.set(key, count);
    else this.unread.delete(key);
  }

  peerHasRead(userId, upTo) {
    this.peerRead.set(userId, Math.max(this.peerRead.get(userId) ?? 0, upTo));
  }

  /**
   * A "read" frame: mine (this or another tab read a conversation: load the server's counts
   * again, once for a burst of them) or a peer's read receipt.
   */
  onRead(frame) {
    if (frame.from === this.me.id) {
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.refresh().catch(() => {}), 150);
    } else if (frame.to === this.me.id) {
      this.peerHasRead(frame.from, frame.up_to);
    }
  }

  /** Mark the open conversation ("user:2" / "group:1"); its unread count goes. */
  setActive(key) {
    this.active = key;
    this.unread.delete(key);
    this.renderGroups();
    this.renderPeople();
  }

  /** A live (or replayed) private or group message; `unread`: count it if not open. */
  onMessage(frame, { unread = true } = {}) {
    const mine = frame.from === this.me.id;
    let key;
    if (frame.type === "private") {
      const other = mine ? frame.to : frame.from;
      if (!this.people.has(other)) refreshOnline([other]); // no presence frame came for them
      this.people.set(other, Math.max(this.people.get(other) ?? 0, frame.id ?? 0));
      key = `user:${other}`;
    } else {
      key = `group:${frame.group_id}`;
      if (!this.groups.has(frame.group_id)) this.loadGroups().catch(() => {});
    }
    if (unread && !mine && key !== this.active) {
      this.unread.set(key, (this.unread.get(key) ?? 0) + 1);
    }
    this.renderGroups();
    this.renderPeople();
  }

  /** A person I just opened a chat with (no message yet). */
  addPerson(id) {
    if (!this.people.has(id)) this.people.set(id, 0);
    this.renderPeople();
  }

  item(key, href, label, extra = []) {
    const count = this.unread.get(key) ?? 0;
    const link = el("a", { className: "item", href, dataset: { key } }, ...extra, label);
    if (key === this.active) link.setAttribute("aria-current", "page");
    if (count) {
      link.append(el("span", { className: "badge", attrs: { "aria-label": `${count} unread` } },
        String(count)));
    }
    return el("li", {}, link);
  }

  renderGroups() {
    const list = byId("group-list");
    const items = [...this.groups.values()].map((g) =>
      this.item(`group:${g.id}`, hashFor("group", g.id), el("span", { className: "label", dir: "auto" }, g.name),
        [el("span", { className: "hash", attrs: { "aria-hidden": "true" } }, "#")]));
    list.replaceChildren(...items);
    if (!items.length) list.append(el("li", { className: "muted" }, "No groups yet."));
  }

  renderInvites() {
    byId("invites-section").hidden = this.invites.length === 0;
    const items = this.invites.map((inv) => el("li", { className: "invite" },
      el("span", { className: "label", dir: "auto" }, inv.group_name),
      el("span", { className: "muted" }, " from ", nameNode(inv.invited_by)),
      el("span", { className: "row" },
        el("button", { type: "button", onclick: () => this.answer(inv, "accept") }, "Accept"),
        el("button", { type: "button", className: "secondary",
          onclick: () => this.answer(inv, "decline") }, "Decline"))));
    byId("invite-list").replaceChildren(...items);
  }

  renderPeople() {
    const list = byId("people-list");
    const ordered = [...this.people.entries()].sort((a, b) => b[1] - a[1]);
    const items = ordered.map(([id]) => this.item(`user:${id}`, hashFor("user", id),
      nameNode(id, "label"), [dot(id)]));
    list.replaceChildren(...items);
    if (!items.length) list.append(el("li", { className: "muted" }, "No conversations yet."));
  }

  async answer(invite, verb) {
    try {
      await post(`/api/groups/${invite.group_id}/${verb}`);
      // the server marked (accept) or removed (decline) the invite's notification
      document.dispatchEvent(new CustomEvent("trionet:notifications-changed"));
      await this.loadGroups();
      if (verb === "accept") location.hash = hashFor("group", invite.group_id);
    } catch (err) {
      flash(this.error, err.message);
      await this.loadGroups().catch(() => {});
    }
  }

  async createGroup(event) {
    event.preventDefault();
    const input = byId("new-group-name");
    const name = input.value.trim();
    if (!name) return;
    try {
      const group = await post("/api/groups", { name });
      input.value = "";
      await this.loadGroups();
      location.hash = hashFor("group", group.id);
    } catch (err) {
      flash(this.error, err.message);
    }
  }

  async openChat(event) {
    event.preventDefault();
    const input = byId("new-chat-name");
    const name = input.value.trim();
    if (!name) return;
    try {
      const data = await get(`/api/users?username=${encodeURIComponent(name)}`);
      const user = data.users[0];
      rememberUser(user);
      input.value = "";
      if (user.id === this.me.id) throw new ApiError(400, "self", "that is you");
      this.addPerson(user.id);
      refreshOnline([user.id]);
      location.hash = hashFor("user", user.id);
    } catch (err) {
      flash(this.error, err.status === 404 ? `No user named “${name}”.` : err.message);
    }
  }
}

// notices.js: the notification bell (unread count; the list with read state; mark all
// read), fed by GET /api/notifications and live notification frames (each id once), and
// admin broadcasts, shown in a dismissible banner.

import { get, post } from "./api.js";
import { byId, el, shortTime } from "./dom.js";

export class Notices {
  constructor() {
    this.items = new Map(); // id -> notification (with read)
    this.unread = 0;
    this.bell = byId("bell");
    this.panel = byId("notifications");
    this.bell.addEventListener("click", () => this.toggle());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.panel.hidden) this.toggle(false);
    });
    document.addEventListener("click", (e) => { // a click elsewhere closes the list
      if (!this.panel.hidden && !this.panel.contains(e.target) && !this.bell.contains(e.target)) {
        this.toggle(false, false);
      }
    });
    byId("mark-all-read").addEventListener("click", () => this.markAllRead());
    document.addEventListener("trionet:notifications-changed", () => {
      // an invite was answered elsewhere on the page: its notification is read (or gone)
      this.items = new Map([...this.items].filter(([, n]) => n.subtype !== "group_invite"));
      this.load().catch((err) => console.debug("reloading notifications failed", err));
    });
    byId("broadcast-close").addEventListener("click", () => {
      byId("broadcast-banner").hidden = true;
    });
  }

  /** Load the newest notifications and the unread count. */
  async load() {
    const data = await get("/api/notifications?limit=50");
    const items = new Map(data.notifications.map((n) => [n.id, n]));
    let unread = data.unread_count;
    // live ones newer than the page may have raced past the query: keep them
    const newest = data.notifications.length ? data.notifications[0].id : 0;
    for (const [id, item] of this.items) {
      if (id > newest && !items.has(id)) {
        items.set(id, item);
        if (!item.read) unread += 1;
      }
    }
    this.items = items;
    this.unread = unread;
    this.render();
  }

  /** A live (or replayed) notification frame. */
  onNotification(frame) {
    if (this.items.has(frame.id)) return;
    this.items.set(frame.id, { ...frame, read: false });
    this.unread += 1;
    this.render();
  }

  onBroadcast(frame) {
    byId("broadcast-text").textContent = frame.content;
    byId("broadcast-banner").hidden = false;
  }

  toggle(open = this.panel.hidden, moveFocus = true) {
    this.panel.hidden = !open;
    this.bell.setAttribute("aria-expanded", String(open));
    if (!moveFocus) return;
    if (open) byId("notification-list").focus();
    else this.bell.focus();
  }

  async markAllRead() {
    try {
      const data = await post("/api/notifications/read");
      for (const item of this.items.values()) item.read = true;
      this.unread = data.unread_count;
      this.render();
    } catch (err) {
      console.debug("mark all read failed", err);
    }
  }

  render() {
    const count = byId("bell-count");
    count.textContent = String(this.unread);
    count.hidden = this.unread === 0;
    this.bell.setAttribute("aria-label",
      `Notifications, ${this.unread === 0 ? "none" : this.unread} unread`);
    const newest = [...this.items.values()].sort((a, b) => b.id - a.id);
    byId("notification-list").replaceChildren(...newest.map((n) => el("li",
      { className: n.read ? "read" : "unread" },
      el("span", { className: "visually-hidden" }, n.read ? "read: " : "unread: "),
      el("span", { className: "text", dir: "auto" }, n.message),
      el("time", { dateTime: n.timestamp }, shortTime(n.timestamp)))));
    byId("notifications-empty").hidden = newest.length > 0;
    byId("mark-all-read").disabled = this.unread === 0;
  }
}

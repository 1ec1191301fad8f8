// app.js: the page's entry point. Signed out, it shows the login form; signed in, it opens
// the socket, builds the sidebar, the conversation pane and the notices, routes every
// incoming frame to them and shows the connection state (an offline banner with the time
// to the next try while the socket is down).

import { get, post, serverNow } from "./api.js";
import { showAuth } from "./auth.js";
import { Conversation } from "./conversation.js";
import { byId } from "./dom.js";
import { Notices } from "./notices.js";
import { presenceChanged, refreshOnline, rememberUser } from "./people.js";
import { Sidebar } from "./sidebar.js";
import { TrionetClient, idAt } from "./trionet-client.js";

const NOTE_KEY = "trionet-note";

async function boot() {
  let session;
  try {
    // /api/session answers {"user": null} when signed out (/api/me would be a 401, which
    // the browser logs as an error on every signed-out load)
    session = await get("/api/session");
  } catch (err) {
    document.body.textContent = `trionet cannot be reached (${err.message}). Reload to retry.`;
    return;
  }
  if (session.user) {
    start(session.user);
  } else {
    const note = sessionStorage.getItem(NOTE_KEY) ?? "";
    sessionStorage.removeItem(NOTE_KEY);
    showAuth(start, note);
  }
}

async function start(me) {
  rememberUser(me);
  byId("auth-view").hidden = true;
  byId("chat-view").hidden = false;
  byId("me").textContent = me.username;
  document.title = `${me.username} · trionet`;

  // resume from a few seconds ago by the server's clock: the first connection already
  // replays whatever arrives while the page loads its lists
  const socket = new TrionetClient({
    since: idAt((await serverNow()) - 3000),
    // a refused handshake: is the session over? (/api/session answers {"user": null})
    checkSession: async () => (await get("/api/session")).user !== null,
  });
  const sidebar = new Sidebar(me);
  const notices = new Notices();
  const pane = new Conversation({ me, socket, sidebar });
  let synced = 0;

  socket.addEventListener("frame", ({ detail: frame }) => {
    switch (frame.type) {
      case "private":
      case "group":
        // the first replay re-sends the seconds before the page loaded: not unread news
        sidebar.onMessage(frame, { unread: synced > 0 });
        pane.onMessage(frame);
        break;
      case "notification":
        notices.onNotification(frame);
        if (frame.subtype === "group_invite") sidebar.loadGroups().catch(() => {});
        break;
      case "presence":
        presenceChanged(frame.user_id, frame.online);
        break;
      case "typing":
        pane.onTyping(frame);
        break;
      case "read":
        sidebar.onRead(frame);
        pane.onRead(frame);
        break;
      case "edited":
      case "deleted":
        pane.onChanged(frame);
        break;
      case "broadcast":
        notices.onBroadcast(frame);
        break;
      default:
        break; // a frame type this page does not know yet
    }
  });
  socket.addEventListener("ack", ({ detail }) => {
    sidebar.onMessage({ ...detail.frame, id: detail.ack.id, from: me.id });
    pane.onAck(detail);
  });
  socket.addEventListener("failed", ({ detail }) => pane.onFailed(detail));
  socket.addEventListener("error", ({ detail: error }) => {
    // unknown_type answers our typing frames until the server supports them: stay quiet
    if (error.code === "unknown_type") pane.typingSupported = false;
    console.debug("server error frame", error);
  });
  socket.addEventListener("open", () => {
    pane.typingSupported = true; // the server may have been upgraded meanwhile
  });
  let gap = false;
  socket.addEventListener("gap", () => { gap = true; });
  socket.addEventListener("synced", () => {
    synced += 1;
    if (synced > 1 || gap) { // a reconnect: catch up what the replay does not carry
      sidebar.refresh().catch(() => {});
      notices.load().catch(() => {});
      refreshOnline([...sidebar.people.keys()]);
    }
    if (gap) pane.reload();
    else pane.markRead(); // a read the socket could not send while it was down
    gap = false;
  });
  socket.addEventListener("state", ({ detail }) => showConnection(detail));
  socket.addEventListener("session-ended", () => {
    sessionStorage.setItem(NOTE_KEY, "Your session ended. Please log in again.");
    location.reload();
  });
  byId("retry-now").addEventListener("click", () => socket.retryNow());
  byId("logout").addEventListener("click", async () => {
    socket.stop();
    await post("/api/auth/logout").catch(() => {});
    location.reload();
  });

  socket.start();
  await Promise.all([
    sidebar.refresh().catch((err) => console.debug("sidebar", err)),
    notices.load().catch((err) => console.debug("notices", err)),
  ]);
  const route = () => {
    const match = /^#\/(user|group)\/(\d+)$/.exec(location.hash);
    if (match) pane.open({ kind: match[1], id: Number(match[2]) });
  };
  window.addEventListener("hashchange", route);
  route();
}

let countdown = null;

function showConnection({ state, retryAt, attempt }) {
  const label = byId("connection");
  const banner = byId("offline-banner");
  const text = byId("offline-text");
  label.textContent = state === "connecting" ? "connecting…" : state;
  label.className = `connection ${state}`;
  clearInterval(countdown);
  banner.hidden = state === "online" || (state === "connecting" && attempt === 0);
  if (state === "connecting") text.textContent = "Offline. Reconnecting…";
  if (state === "offline" && retryAt) {
    const paint = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text.textContent = `Offline. Reconnecting in ${seconds} s…`;
    };
    paint();
    countdown = setInterval(paint, 500);
  }
}

boot();

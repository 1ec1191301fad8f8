// people.js: user names and online status, cached for the whole page. Names come from
// GET /api/users?ids= (looked up in batches on first use); online status from
// GET /api/users/online?ids= on load and reconnect, then from live presence frames.
// Elements made by nameNode() and dot() repaint themselves when either changes.

import { get } from "./api.js";
import { el } from "./dom.js";

const names = new Map(); // user id -> username
const online = new Map(); // user id -> bool
const heardAt = new Map(); // user id -> number of the presence frame that last changed it
let heard = 0; // presence frames so far
let wanted = new Set();
let lookup = null;

/** Remember a user the API already returned ({id, username}). */
export function rememberUser(user) {
  if (!user || !Number.isInteger(user.id)) return;
  names.set(user.id, user.username);
  for (const node of document.querySelectorAll(`[data-user-name="${user.id}"]`)) {
    node.textContent = user.username;
  }
}

/** The user's name if known (else a placeholder, and a look-up is started). */
export function nameOf(id) {
  if (names.has(id)) return names.get(id);
  if (Number.isInteger(id) && id > 0) {
    wanted.add(id);
    lookup ??= setTimeout(fetchNames, 0);
  }
  return `user ${id}`;
}

/** A <span> showing the user's name, updated when the name arrives. */
export function nameNode(id, className = "name") {
  return el("span", { className, dir: "auto", dataset: { userName: String(id) } }, nameOf(id));
}

async function fetchNames() {
  lookup = null;
  const ids = [...wanted].slice(0, 500);
  wanted = new Set([...wanted].slice(500));
  if (wanted.size) lookup = setTimeout(fetchNames, 0);
  try {
    const data = await get(`/api/users?ids=${ids.join(",")}`);
    data.users.forEach(rememberUser);
  } catch (err) {
    console.debug("name look-up failed", err);
  }
}

/** A presence dot for the user (role=img with an "online"/"offline" label). */
export function dot(id) {
  const node = el("span", { className: "dot", dataset: { presence: String(id) },
    attrs: { role: "img" } });
  paintDot(node, online.get(id) === true);
  return node;
}

function paintDot(node, isOnline) {
  node.classList.toggle("online", isOnline);
  node.setAttribute("aria-label", isOnline ? "online" : "offline");
  node.title = isOnline ? "online" : "offline";
}

export function isOnline(id) {
  return online.get(id) === true;
}

/** A presence frame: record the change and repaint every dot of that user. */
export function presenceChanged(id, isOn) {
  heard += 1;
  heardAt.set(id, heard);
  setOnline(id, isOn);
}

function setOnline(id, isOn) {
  online.set(id, Boolean(isOn));
  for (const node of document.querySelectorAll(`[data-presence="${id}"]`)) {
    paintDot(node, Boolean(isOn));
  }
  document.dispatchEvent(new CustomEvent("presence-changed", { detail: { id } }));
}

/** Ask the server who of `ids` is online now (on load and after each reconnect). */
export async function refreshOnline(ids) {
  const unique = [...new Set(ids)].filter((i) => Number.isInteger(i));
  for (let start = 0; start < unique.length; start += 500) {
    const batch = unique.slice(start, start + 500);
    const asked = heard;
    try {
      const data = await get(`/api/users/online?ids=${batch.join(",")}`);
      for (const [key, isOn] of Object.entries(data.online)) {
        const id = Number(key);
        // a presence frame that came while the request was out is newer than its answer
        if ((heardAt.get(id) ?? 0) <= asked) setOnline(id, isOn);
      }
    } catch (err) {
      console.debug("online look-up failed", err);
    }
  }
}

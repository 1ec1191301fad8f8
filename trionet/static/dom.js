// dom.js: tiny DOM helpers. User content only ever goes in as text (text nodes and
// textContent), never as HTML: nothing in this page parses markup from the network.

/** Element by id (throws early on a typo rather than failing later). */
export function byId(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`no element #${id}`);
  return found;
}

/**
 * Build an element: el("li", {className: "msg", dataset: {id: 5}}, "text", child).
 * Strings become text nodes; props are DOM properties (never innerHTML).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "attrs") for (const [a, v] of Object.entries(value)) node.setAttribute(a, v);
    else if (key === "innerHTML") throw new Error("innerHTML is not allowed");
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** "14:05" today, else "3 Mar 14:05", from an ISO timestamp. */
export function shortTime(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === new Date().toDateString()) return time;
  return `${when.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

/** Show a short-lived message in a role=status/alert element. */
export function flash(node, text, ms = 4000) {
  node.textContent = text;
  clearTimeout(node._flashTimer);
  if (text) node._flashTimer = setTimeout(() => { node.textContent = ""; }, ms);
}

// api.js: the trionet HTTP API (docs/api.md) over fetch, with the session cookie.
// Every call resolves to the decoded JSON body or throws an ApiError carrying the
// server's {"error": {"code", "message"}}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the API: request("POST", "/api/groups", {name}) -> body. */
export async function request(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new ApiError(response.status, error.code || "http_error",
      error.message || `HTTP ${response.status}`);
  }
  return data;
}

/** The server's clock (its Date header, to the second) in ms, or the browser's if absent. */
export async function serverNow() {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) return date;
  } catch (err) { /* fall back to the local clock */ }
  return Date.now();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);

/** A query string from an object, leaving out null/undefined values. */
export function query(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

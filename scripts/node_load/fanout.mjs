// Fan-out load from Node.js with the `ws` library: an independent client for
// `scripts/loadtest.py bench --client node` (which installs it with `npm ci` on first use).
//
// G groups x M members: the first member of each group sends, the others receive. At full
// speed each sender keeps `--window` messages in flight (sent and not yet seen by the group's
// last member: a closed loop); with `--rate` it sends that many a second on a fixed schedule.
// Users are JWTs (HS256, TRIONET_JWT_SECRET), groups are made with the server API
// (TRIONET_API_KEY). Prints one JSON line with the keys scripts/loadtest.py reports, and
// writes it to `--json-out`.
//
//   node fanout.mjs --url http://127.0.0.1:8000 --groups 10 --members 100 --window 64 \
//       --duration 8 --coalesce --server-pid 1234
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    groups: { type: "string", default: "10" },
    members: { type: "string", default: "100" },
    window: { type: "string", default: "64" },
    rate: { type: "string" },
    duration: { type: "string", default: "8" },
    warmup: { type: "string", default: "2" },
    drain: { type: "string", default: "10" },
    size: { type: "string", default: "100" },
    coalesce: { type: "boolean", default: false },
    "server-pid": { type: "string" },
    "json-out": { type: "string" },
    label: { type: "string", default: "target" },
    "no-progress": { type: "boolean", default: false }, // it shows none anyway
  },
  allowPositionals: true,
});
const G = Number(opt.groups), M = Number(opt.members), WINDOW = Number(opt.window);
const RATE = opt.rate === undefined ? null : Number(opt.rate);
const base = new URL(opt.url);
if (!["127.0.0.1", "localhost", "[::1]"].includes(base.hostname)) {
  throw new Error("loopback targets only");
}
const secret = process.env.TRIONET_JWT_SECRET, apiKey = process.env.TRIONET_API_KEY;
if (!secret || !apiKey) throw new Error("set TRIONET_JWT_SECRET and TRIONET_API_KEY");
const idBase = Math.floor(Date.now() / 1000) % 1_000_000 * 10_000;

const b64 = (x) => Buffer.from(x).toString("base64url");
function token(userId) {
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify({ sub: String(userId), exp: Math.floor(Date.now() / 1000) + 3600 }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

async function put(path, body) {
  const res = await fetch(new URL(path, base), {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}

const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 a second)
};
const wsUrl = `ws://${base.host}/ws${opt.coalesce ? "?coalesce=1" : ""}`;
const nowNs = () => process.hrtime.bigint();

let sending = true, measuring = false;
let received = 0, frames = 0, errors = 0, allReceived = 0, closedByServer = {};
const latencies = [];
const groups = [];

function connect(userId, onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${token(userId)}` },
                                      perMessageDeflate: false, maxPayload: 64 * 2 ** 20 });
    ws.on("open", () => resolve(ws));
    ws.on("error", reject);
    ws.on("message", onMessage);
    ws.on("close", (code) => {
      if (sending) closedByServer[code] = (closedByServer[code] || 0) + 1;
    });
  });
}

const pad = "x".repeat(Math.max(0, Number(opt.size) - 40));
function send(g) {
  g.sent += 1;
  g.sender.send(`{"type":"group","group_id":${g.gid},"content":"L${nowNs()}:${g.sent}:${pad}","client_id":"${g.sent}"}`);
}
function fill(g) { // full speed: keep WINDOW messages in flight
  while (sending && g.sent - g.seenByProbe < WINDOW) send(g);
}

function countGroupFrames(text) { // messages in one WebSocket message (coalesced: one a line)
  let n = 0, at = 0;
  while ((at = text.indexOf('"type":"group"', at)) !== -1) { n += 1; at += 14; }
  return n;
}

for (let gi = 0; gi < G; gi++) {
  const gid = idBase + gi + 1;
  const members = Array.from({ length: M }, (_, j) => idBase + 1 + gi * M + j);
  groups.push({ gid, members, sent: 0, acked: 0, seenByProbe: 0, sender: null });
}
// connect (bounded concurrency), receivers first
const plan = [];
for (const g of groups) {
  g.members.slice(1).forEach((uid, j) => plan.push({ g, uid, probe: j === M - 2 }));
}
let next = 0;
async function connector() {
  while (next < plan.length) {
    const { g, uid, probe } = plan[next++];
    await connect(uid, (data) => {
      const text = data.toString();
      const n = countGroupFrames(text);
      if (n === 0) return;
      allReceived += n;
      if (measuring) { received += n; frames += 1; }
      if (probe) {
        g.seenByProbe += n;
        if (measuring) {
          for (const line of text.split("\n")) {
            const at = line.indexOf('"content":"L');
            if (at !== -1) {
              const t = BigInt(line.slice(at + 12, line.indexOf(":", at + 12)));
              latencies.push(Number(nowNs() - t) / 1e6);
            }
          }
        }
        if (RATE === null) fill(g);
      }
    });
  }
}
await Promise.all(Array.from({ length: 32 }, connector));
for (const g of groups) {
  g.sender = await connect(g.members[0], (data) => {
    const text = data.toString();
    for (const line of text.split("\n")) {
      if (line.includes('"type":"ack"')) g.acked += 1;
      else if (line.includes('"type":"error"')) errors += 1;
    }
  });
  await put(`/api/server/groups/${g.gid}`, {
    name: `node load ${g.gid}`,
    members: g.members.map((u) => ({ user_id: u, status: "accepted" })),
  });
}
await new Promise((r) => setTimeout(r, 300));

const timers = [];
if (RATE === null) groups.forEach(fill);
else {
  groups.forEach((g, i) => {
    const interval = 1000 / RATE;
    const start = performance.now() + (i / G) * interval;
    let due = start;
    const tick = () => {
      if (!sending) return;
      const now = performance.now();
      while (due <= now) { send(g); due += interval; }
      timers.push(setTimeout(tick, Math.max(0, due - performance.now())));
    };
    timers.push(setTimeout(tick, start - performance.now()));
  });
}
await new Promise((r) => setTimeout(r, Number(opt.warmup) * 1000));
const pid = opt["server-pid"];
const cpu0 = pid ? cpuTicks(pid) : 0, own0 = process.cpuUsage();
const t0 = performance.now(), sent0 = groups.reduce((a, g) => a + g.sent, 0);
measuring = true;
await new Promise((r) => setTimeout(r, Number(opt.duration) * 1000));
measuring = false;
const elapsed = (performance.now() - t0) / 1000;
const cpu1 = pid ? cpuTicks(pid) : 0, own = process.cpuUsage(own0);
const sentMeasured = groups.reduce((a, g) => a + g.sent, 0) - sent0;
sending = false;
// drain: every message sent reaches every receiver
const totalSent = () => groups.reduce((a, g) => a + g.sent, 0);
const deadline = performance.now() + Number(opt.drain) * 1000;
while (performance.now() < deadline && allReceived < totalSent() * (M - 1)) {
  await new Promise((r) => setTimeout(r, 20));
}
latencies.sort((a, b) => a - b);
const q = (p) => latencies.length ? +latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(3) : null;
const result = {
  scenario: "fanout", target: opt.label, client: "node ws",
  mode: RATE === null ? `full speed, window ${WINDOW}` : `${RATE}/s per group`,
  groups: G, members: M, coalesce: opt.coalesce, duration_s: +elapsed.toFixed(2),
  delivered_per_s: Math.round(received / elapsed),
  sent_per_s: +(sentMeasured / elapsed).toFixed(1),
  ws_frames_per_s: Math.round(frames / elapsed),
  messages_per_frame: frames ? +(received / frames).toFixed(2) : null,
  sent: totalSent(), expected: totalSent() * (M - 1), received: allReceived,
  lost: totalSent() * (M - 1) - allReceived,
  drained: allReceived >= totalSent() * (M - 1), errors,
  closed_by_server: closedByServer,
  latency_ms: { samples: latencies.length, p50: q(0.5), p90: q(0.9), p99: q(0.99),
                max: latencies.length ? +latencies[latencies.length - 1].toFixed(3) : null },
  server_cpu_pct: pid ? +((cpu1 - cpu0) / elapsed).toFixed(1) : null,
  loadgen_cpu_pct: +((own.user + own.system) / 1e4 / elapsed).toFixed(1),
};
const line = JSON.stringify(result);
console.log(line);
if (opt["json-out"]) writeFileSync(opt["json-out"], line);
timers.forEach(clearTimeout);
process.exit(0);

// XoQ's browser viewer: one robot's camera (played by @moq/watch from its hang catalog) and a
// CAN monitor (frames per id, rate, the simulated Damiao motors' positions) from a bus's
// `state` track, both from a MoQ relay. Everything comes from the page's query string:
//
//   index.html?relay=https://relay.example.org:4443&path=fleet/robot1&jwt=TOKEN&camera=cam0&can=can0
//
// `relay` may be http://HOST:PORT for a relay with a self-signed certificate that serves its
// fingerprint over HTTP on the same port (`moq-relay --web-http-listen`), or give its SHA-256
// in `fingerprint`. `report=URL` (tests) POSTs what the page shows twice a second.

import "@moq/watch/element";
import * as Moq from "@moq/net";
import { damiaoFeedback, decodeCanFrames } from "./can.js";

const q = new URLSearchParams(location.search);
const relay = q.get("relay");
const path = q.get("path") ?? "";
const jwt = q.get("jwt");
const camera = q.get("camera");
const can = q.get("can");
const report = q.get("report");
const fingerprint = q.get("fingerprint");

const status = document.getElementById("status");
const say = (text) => {
  status.textContent = text;
};

function sessionUrl() {
  const u = new URL(relay);
  u.pathname = `/${path.replace(/^\/+|\/+$/g, "")}`;
  if (jwt) u.searchParams.set("jwt", jwt);
  return u;
}

/** Per CAN id: frames, recent arrival times (for the rate), last data, motor feedback. */
const ids = new Map();

function showCan() {
  const body = document.querySelector("#can tbody");
  const now = performance.now();
  const rows = [...ids.entries()].sort((a, b) => a[0] - b[0]);
  body.replaceChildren(
    ...rows.map(([id, s]) => {
      s.times = s.times.filter((t) => now - t < 1000);
      const tr = document.createElement("tr");
      const motor = s.motor ? `#${s.motor.motor} ${s.motor.enabled ? "on" : "off"} ${s.motor.position.toFixed(3)} rad` : "";
      const data = [...s.last].map((b) => b.toString(16).padStart(2, "0")).join("");
      for (const cell of [`0x${id.toString(16)}`, s.count, s.times.length, data, motor]) {
        const td = document.createElement("td");
        td.textContent = String(cell);
        tr.append(td);
      }
      return tr;
    }),
  );
}

async function monitorCan(connection) {
  document.getElementById("can-title").textContent = `CAN ${can}`;
  const broadcast = connection.consume(Moq.Path.from(can));
  const track = broadcast.subscribe("state");
  for (;;) {
    const frame = await track.readFrame();
    if (!frame) break;
    const frames = decodeCanFrames(frame.payload);
    if (!frames) {
      console.warn("a malformed message on the state track; ignored");
      continue;
    }
    for (const f of frames) {
      const s = ids.get(f.id) ?? { count: 0, times: [], last: new Uint8Array(), motor: null };
      s.count += 1;
      s.times.push(performance.now());
      s.last = f.data;
      s.motor = damiaoFeedback(f) ?? s.motor;
      ids.set(f.id, s);
    }
  }
  say(`CAN ${can}: the track ended`);
}

function webtransport() {
  return fingerprint ? { serverCertificateHashes: [{ algorithm: "sha-256", value: fingerprint }] } : undefined;
}

function showCamera() {
  const el = document.getElementById("camera");
  document.getElementById("camera-title").textContent = `camera ${camera}`;
  const pins = webtransport();
  if (pins) el.connection.webtransport = pins;
  el.setAttribute("url", sessionUrl().toString());
  el.setAttribute("name", camera);
}

/** The canvas's luma (BT.601), base64, for a test to read the picture's frame number. */
function canvasLuma() {
  const c = document.getElementById("picture");
  if (!c.width || !c.height) return null;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (!ctx) return null;
  const rgba = ctx.getImageData(0, 0, c.width, c.height).data;
  const y = new Uint8Array(c.width * c.height);
  for (let i = 0; i < y.length; i++) {
    const [r, g, b] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
    y[i] = Math.round(16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256);
  }
  let s = "";
  for (let i = 0; i < y.length; i += 0x8000) s += String.fromCharCode(...y.subarray(i, i + 0x8000));
  return { width: c.width, height: c.height, y: btoa(s) };
}

async function sendReport() {
  const can_ids = {};
  for (const [id, s] of ids) can_ids[id] = { count: s.count, motor: s.motor };
  const body = JSON.stringify({ status: status.textContent, picture: camera ? canvasLuma() : null, can: can_ids });
  await fetch(report, { method: "POST", body, headers: { "content-type": "application/json" } });
}

async function main() {
  if (!relay) {
    say("give ?relay=URL&path=PREFIX/SERVER&jwt=TOKEN&camera=NAME&can=NAME");
    return;
  }
  if (camera) showCamera();
  setInterval(showCan, 500);
  if (report) setInterval(() => sendReport().catch((e) => console.warn(e)), 500);
  if (can) {
    const connection = await Moq.Connection.connect(sessionUrl(), { webtransport: webtransport() });
    say("connected");
    await monitorCan(connection);
  } else {
    say("connected");
  }
}

main().catch((e) => say(`failed: ${e}`));

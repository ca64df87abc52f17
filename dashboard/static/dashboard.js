// edge-emotion dashboard: the live stream (Server-Sent Events) drawn as one card per device.
// Everything from the network (device ids, emotions) is inserted as text, never as HTML.
"use strict";

const EMOTION_COLORS = {
  angry: "#d62728", disgust: "#7a9a01", fear: "#8e44ad", happy: "#f2b701",
  sad: "#1f77b4", surprise: "#ff7f0e", neutral: "#9aa0a6",
};
const STAGE_COLORS = {
  capture: "#4e79a7", detect: "#59a14f", track: "#edc948", preprocess: "#b07aa1",
  infer: "#e15759", smooth: "#76b7b2", publish: "#ff9da7",
};
const HISTORY_REFRESH_MS = 5 * 60 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

let labels = Object.keys(EMOTION_COLORS);
let traceSeconds = 600;
let traceBucket = 2;
let clockOffset = 0;  // server time minus this browser's time, seconds
const devices = new Map();  // id -> {data, trace, history, card, parts}
const dirty = new Set();
let frameRequested = false;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

const serverNow = () => Date.now() / 1000 + clockOffset;
const pct = (p) => `${Math.round((p || 0) * 100)}%`;
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit"});

function ago(t) {
  if (t === null || t === undefined) return "never";
  const s = Math.max(0, serverNow() - t);
  if (s < 2) return "just now";
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function duration(s) {
  if (s === null || s === undefined) return "";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min`;
}

// ---- the stream -------------------------------------------------------------------------------

function connect() {
  const connection = document.getElementById("connection");
  const stream = new EventSource("/events");
  stream.onopen = () => { connection.dataset.state = "live"; connection.textContent = "live"; };
  stream.onerror = () => { connection.dataset.state = "lost"; connection.textContent = "connection lost, retrying…"; };
  stream.addEventListener("snapshot", (e) => {
    const msg = JSON.parse(e.data);
    clockOffset = msg.now - Date.now() / 1000;
    labels = msg.labels;
    traceSeconds = msg.trace_s;
    traceBucket = msg.trace_bucket_s;
    for (const data of msg.devices) upsert(data);
    showFigures(msg.figures);
  });
  stream.addEventListener("update", (e) => {
    const msg = JSON.parse(e.data);
    clockOffset = msg.now - Date.now() / 1000;
    for (const data of msg.devices) upsert(data);
  });
  stream.addEventListener("figures", (e) => showFigures(JSON.parse(e.data)));
}

function upsert(data) {
  let entry = devices.get(data.device);
  if (!entry) {
    entry = {data, trace: [], history: null, card: null, parts: null};
    devices.set(data.device, entry);
    buildCard(entry);
    loadHistory(entry);
    setInterval(() => loadHistory(entry), HISTORY_REFRESH_MS);
    addExportOption(data.device);
  }
  entry.data = data;
  mergeTrace(entry, data.trace, data.trace_complete);
  dirty.add(data.device);
  requestDraw();
}

function mergeTrace(entry, points, complete) {
  if (complete) { entry.trace = points.slice(); return; }
  for (const point of points) {
    const last = entry.trace[entry.trace.length - 1];
    if (last && last[0] === point[0]) entry.trace[entry.trace.length - 1] = point;
    else if (!last || point[0] > last[0]) entry.trace.push(point);
  }
  const since = serverNow() - traceSeconds;
  while (entry.trace.length && entry.trace[0][0] < since) entry.trace.shift();
}

async function loadHistory(entry) {
  try {
    const response = await fetch(`/api/history?device=${encodeURIComponent(entry.data.device)}&hours=24`);
    if (!response.ok) return;
    entry.history = await response.json();
    dirty.add(entry.data.device);
    requestDraw();
  } catch (err) {
    // the stream's own banner says the dashboard is unreachable; the next refresh retries
  }
}

function showFigures(f) {
  const connected = f.mqtt_connected ? "" : " · broker not connected";
  document.getElementById("figures").textContent =
    `${f.devices} device${f.devices === 1 ? "" : "s"} · ${f.messages_per_s} msg/s · ` +
    `${f.stored.toLocaleString()} events stored this run${f.backlog > 100 ? ` · ${f.backlog} queued` : ""}${connected}`;
}

// ---- drawing ----------------------------------------------------------------------------------

function requestDraw() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    for (const id of dirty) drawCard(devices.get(id));
    dirty.clear();
  });
}

function buildCard(entry) {
  const card = el("article", "card");
  card.dataset.device = entry.data.device;
  const head = el("div", "card-head");
  const name = el("h2", "", entry.data.device);
  const status = el("span", "status");
  head.append(name, status);
  const meta = el("div", "meta");
  const faces = el("div", "faces");
  const voice = el("div", "voice");
  const traceKey = el("div", "key");
  const trace = el("div", "trace");
  const latency = el("div", "latency");
  const day = el("div", "day");
  const foot = el("div", "card-foot");
  const csv = el("a", "", "CSV (24 h)");
  csv.href = `/export.csv?device=${encodeURIComponent(entry.data.device)}`;
  const seen = el("span", "seen");
  foot.append(seen, csv);
  card.append(head, meta, el("h3", "", "Faces"), faces, el("h3", "", "Voice"), voice,
              el("h3", "", `Valence and arousal, last ${Math.round(traceSeconds / 60)} min`), traceKey, trace, el("h3", "", "Latency per frame"), latency,
              el("h3", "", "Last 24 hours"), day, foot);
  entry.card = card;
  entry.parts = {status, meta, faces, voice, traceKey, trace, latency, day, seen};
  document.getElementById("empty").hidden = true;
  const list = document.getElementById("devices");
  const after = [...list.querySelectorAll(".card")].find((c) => c.dataset.device > entry.data.device);
  list.insertBefore(card, after || null);
}

function drawCard(entry) {
  const d = entry.data, p = entry.parts;
  entry.card.dataset.status = d.status;
  p.status.dataset.status = d.status;
  p.status.textContent = d.status === "unknown" ? "no status yet" : d.status;
  p.status.title = d.status_since ? `${d.status} since ${new Date(d.status_since * 1000).toLocaleString()}` : "";
  drawMeta(entry);
  drawFaces(p.faces, d);
  drawVoice(p.voice, d);
  p.traceKey.replaceChildren(el("span", "v", "valence"), document.createTextNode(" (+ pleasant) · "),
                             el("span", "a", "arousal"), document.createTextNode(" (+ excited)"));
  p.traceKey.title = "mean over the faces in view, 2 s steps; gaps: no face";
  p.trace.replaceChildren(traceChart(entry.trace));
  drawLatency(p.latency, d.stats);
  p.day.replaceChildren(dayRibbon(entry.history));
}

function drawMeta(entry) {
  const d = entry.data, s = d.stats || {}, bits = [];
  if (d.status_since) bits.push(`${d.status} since ${clock(d.status_since)}`);
  if (typeof s.fps === "number") bits.push(`${s.fps.toFixed(1)} fps`);
  if (typeof s.cpu_temp_c === "number") bits.push(`CPU ${s.cpu_temp_c.toFixed(1)} °C`);
  if (typeof s.rss_mb === "number") bits.push(`${Math.round(s.rss_mb)} MB`);
  if (typeof s.uptime_s === "number" && d.status === "online") bits.push(`up ${duration(s.uptime_s)}`);
  if (d.version) bits.push(`v${d.version}`);
  entry.parts.meta.textContent = bits.join(" · ");
  entry.parts.seen.textContent = `${d.events.toLocaleString()} events this run · last message ${ago(d.last_seen)}`;
}

function drawFaces(box, d) {
  if (d.status === "offline") { box.replaceChildren(el("div", "none", "device offline")); return; }
  if (!d.tracks.length) { box.replaceChildren(el("div", "none", "no face in view")); return; }
  box.replaceChildren(...d.tracks.map((t) => {
    const face = el("div", "face");
    face.dataset.track = t.track_id;
    const line = el("div", "face-line");
    const name = el("span", "emotion", t.emotion || "?");
    name.style.color = shade(EMOTION_COLORS[t.emotion]);
    line.append(el("span", "id", `face ${t.track_id}`), name, el("span", "confidence", pct(t.confidence)));
    if (t.fused && t.fused.emotion) line.append(el("span", "fused", `face+voice: ${t.fused.emotion} ${pct(t.fused.confidence)}`));
    face.append(line, probabilityBar(t));
    return face;
  }));
}

// Text in an emotion's colour must stay readable on white: darken the light ones.
function shade(color) { return color === EMOTION_COLORS.happy ? "#a67c00" : color === EMOTION_COLORS.neutral ? "#5f6b76" : color; }

function probabilityBar(track) {
  const bar = el("div", "bar");
  const probabilities = track.probabilities || {[track.emotion]: track.confidence || 0};
  bar.title = labels.map((l) => `${l} ${pct(probabilities[l])}`).join(", ");
  for (const label of labels) {
    const part = el("span");
    part.dataset.label = label;
    part.style.width = `${(probabilities[label] || 0) * 100}%`;
    part.style.background = EMOTION_COLORS[label];
    bar.append(part);
  }
  return bar;
}

function drawVoice(box, d) {
  const v = d.voice;
  if (d.status === "offline") { box.replaceChildren(el("span", "none", "—")); return; }
  if (!v) { box.replaceChildren(el("span", "none", "no voice reading (audio off or not yet heard)")); return; }
  const level = v.vad && typeof v.vad.level_db === "number" ? `${v.vad.level_db.toFixed(0)} dB` : "";
  const age = ago(d.voice_at);
  const u = v.utterance;
  if (v.emotion && u && u.emotion) {  // what the utterance says so far; the 2 s window beside it
    box.replaceChildren(el("b", "", u.emotion), document.createTextNode(
      ` ${pct(u.confidence)} over ${u.readings} windows · this window ${v.emotion} ${pct(v.confidence)} · speech ${level} · ${age}`));
  } else if (v.emotion) {
    box.replaceChildren(el("b", "", v.emotion), document.createTextNode(` ${pct(v.confidence)} · speech ${level} · ${age}`));
  } else {
    box.replaceChildren(el("span", "none", `no speech (${level}) · ${age}`));
  }
}

function traceChart(points) {
  const w = 320, h = 96, left = 22, right = 4, top = 4, bottom = 14;
  const svg = svgEl("svg", {class: "chart", viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": "valence and arousal over the last minutes"});
  const now = serverNow(), x0 = now - traceSeconds;
  const x = (t) => left + ((t - x0) / traceSeconds) * (w - left - right);
  const y = (v) => top + ((1 - v) / 2) * (h - top - bottom);
  svg.append(svgEl("line", {class: "axis", x1: left, x2: w - right, y1: y(-1), y2: y(-1)}),
             svgEl("line", {class: "zero", x1: left, x2: w - right, y1: y(0), y2: y(0)}),
             svgEl("line", {class: "axis", x1: left, x2: w - right, y1: y(1), y2: y(1)}));
  for (const [v, label] of [[1, "+1"], [0, "0"], [-1, "−1"]]) {
    const t = svgEl("text", {x: left - 3, y: y(v) + 3, "text-anchor": "end"});
    t.textContent = label;
    svg.append(t);
  }
  const minutes = Math.round(traceSeconds / 60);
  for (const [t, label, anchor] of [[x0, `−${minutes} min`, "start"], [now, "now", "end"]]) {
    const text = svgEl("text", {x: x(t), y: h - 2, "text-anchor": anchor});
    text.textContent = label;
    svg.append(text);
  }
  if (!points.length) {
    const text = svgEl("text", {x: w / 2, y: h / 2, "text-anchor": "middle"});
    text.textContent = "no faces in this period";
    svg.append(text);
    return svg;
  }
  for (const run of runs(points)) {
    for (const [index, cls] of [[1, "valence"], [2, "arousal"]]) {
      const coords = run.map((p) => `${x(p[0]).toFixed(1)},${y(p[index]).toFixed(1)}`);
      if (coords.length === 1) coords.push(`${(x(run[0][0]) + 1.5).toFixed(1)},${y(run[0][index]).toFixed(1)}`);
      svg.append(svgEl("polyline", {class: cls, points: coords.join(" ")}));
    }
  }
  return svg;
}

// Stretches without faces are left blank rather than bridged by a line that was never measured.
function runs(points) {
  const result = [];
  for (const point of points) {
    const run = result[result.length - 1];
    if (run && point[0] - run[run.length - 1][0] <= 3 * traceBucket) run.push(point);
    else result.push([point]);
  }
  return result;
}

function drawLatency(box, stats) {
  if (!stats || !stats.stage_ms) { box.replaceChildren(el("span", "none", "no stats yet")); return; }
  const stages = Object.entries(stats.stage_ms).filter(([, ms]) => typeof ms === "number");
  const total = stages.reduce((sum, [, ms]) => sum + ms, 0);
  const bar = el("div", "bar");
  const key = el("div", "stages");
  for (const [stage, ms] of stages) {
    const part = el("span");
    part.style.width = `${total ? (ms / total) * 100 : 0}%`;
    part.style.background = STAGE_COLORS[stage] || "#999";
    part.title = `${stage} ${ms.toFixed(1)} ms`;
    bar.append(part);
    const item = el("span", "", `${stage} ${ms.toFixed(1)}`);
    const swatch = el("i");
    swatch.style.background = STAGE_COLORS[stage] || "#999";
    item.prepend(swatch);
    key.append(item);
  }
  box.replaceChildren(el("div", "latency-total", `${total.toFixed(1)} ms per frame (${typeof stats.fps === "number" ? stats.fps.toFixed(1) : "?"} fps)`), bar, key);
}

// The day as columns of 10 minutes, each split by the share of each emotion in its events.
function dayRibbon(history) {
  const w = 288, h = 34, barH = 22;
  const events = history ? history.bins.reduce((sum, bin) => sum + bin.n, 0) : 0;
  const svg = svgEl("svg", {class: "chart", viewBox: `0 0 ${w} ${h}`, role: "img",
                            "aria-label": `emotions over the last 24 hours: ${events} events`});
  svg.append(svgEl("rect", {x: 0, y: 0, width: w, height: barH, fill: "#eceff3"}));
  const end = serverNow(), start = end - 86400;
  const x = (t) => ((t - start) / 86400) * w;
  if (history) {
    for (const bin of history.bins) {
      let y0 = 0;
      const bx = x(bin.t), bw = Math.max(1, x(bin.t + history.bin_s) - bx);
      for (const label of labels) {
        const n = bin.counts[label] || 0;
        if (!n) continue;
        const bh = (n / bin.n) * barH;
        svg.append(svgEl("rect", {class: "bin", x: bx.toFixed(1), y: y0.toFixed(1), width: bw.toFixed(1),
                                  height: bh.toFixed(1), fill: EMOTION_COLORS[label]}));
        y0 += bh;
      }
    }
  }
  for (const [t, label, anchor] of [[start, "−24 h", "start"], [start + 43200, "−12 h", "middle"], [end, "now", "end"]]) {
    const text = svgEl("text", {x: x(t), y: h - 2, "text-anchor": anchor});
    text.textContent = label;
    svg.append(text);
  }
  if (history && !history.bins.length) {
    const text = svgEl("text", {x: w / 2, y: barH / 2 + 3, "text-anchor": "middle"});
    text.textContent = "no events stored in the last 24 hours";
    svg.append(text);
  }
  return svg;
}

// ---- legend, export form, clock ---------------------------------------------------------------

function buildLegend() {
  const legend = document.getElementById("legend");
  for (const [label, color] of Object.entries(EMOTION_COLORS)) {
    const item = el("span", "", label);
    const swatch = el("i");
    swatch.style.background = color;
    item.prepend(swatch);
    legend.append(item);
  }
}

function addExportOption(device) {
  const select = document.getElementById("export-device");
  const option = el("option", "", device);
  option.value = device;
  select.append(option);
}

function localInputValue(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

function setUpExport() {
  const now = new Date();
  document.getElementById("export-to").value = localInputValue(now);
  document.getElementById("export-from").value = localInputValue(new Date(now.getTime() - 86400000));
  document.getElementById("export-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    const device = document.getElementById("export-device").value;
    if (device) params.set("device", device);
    for (const name of ["from", "to"]) {
      const value = document.getElementById(`export-${name}`).value;
      if (value) params.set(name, String(new Date(value).getTime() / 1000));
    }
    window.location.href = `/export.csv?${params}`;
  });
}

buildLegend();
setUpExport();
connect();
// Relative times ("3 s ago") and the trace's moving time axis: redraw every card once a second.
setInterval(() => { for (const id of devices.keys()) dirty.add(id); requestDraw(); }, 1000);
